package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/natter-chat/natter/pkg/clientaddr"
	"github.com/natter-chat/natter/pkg/ratelimit"
	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Reasons an upgrade is refused for its client address: the "reason" label of
// natter_gateway_upgrades_refused_total.
const (
	refusedAddrRate    = "addr_rate"
	refusedAddrSockets = "addr_sockets"
)

// socketsFullRetry is the Retry-After of an upgrade refused because its address holds
// Config.SocketsPerAddr sockets: nothing says when one closes, so the client waits a while.
const socketsFullRetry = 10 * time.Second

// addrLimits bounds what one client address (clientaddr.Key) may do to a gateway: upgrades per
// period (Config.UpgradesPerAddr) and sockets open at once (Config.SocketsPerAddr). Safe for
// concurrent use.
type addrLimits struct {
	upgrades *ratelimit.Keyed // nil: no rate limit
	max      int              // 0: no bound on open sockets
	trusted  []netip.Prefix
	mu       sync.Mutex
	open     map[string]int // sockets held per address; only addresses holding some
}

func newAddrLimits(c Config) *addrLimits {
	keys := c.AddrLimitKeys
	if keys == 0 {
		keys = ratelimit.DefaultMaxKeys
	}
	return &addrLimits{upgrades: ratelimit.NewKeyed(c.UpgradesPerAddr, keys), max: c.SocketsPerAddr,
		trusted: c.TrustedProxies, open: map[string]int{}}
}

// key is the client address r is counted against.
func (a *addrLimits) key(r *http.Request) string {
	peer, _ := netip.ParseAddrPort(r.RemoteAddr) // a listener's RemoteAddr is always ip:port
	return clientaddr.Key(peer.Addr(), r.Header.Values(clientaddr.HeaderForwardedFor), a.trusted)
}

// admit takes one of addr's upgrades and one of its socket slots at now, or takes neither and
// returns the refusal's reason and how long the client should wait.
func (a *addrLimits) admit(addr string, now time.Time) (reason string, retry time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.max > 0 && a.open[addr] >= a.max {
		return refusedAddrSockets, socketsFullRetry
	}
	if d := a.upgrades.Wait(addr, now); d > 0 {
		return refusedAddrRate, d
	}
	a.open[addr]++
	return "", 0
}

// release gives back a socket slot admit took.
func (a *addrLimits) release(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open[addr]--; a.open[addr] <= 0 {
		delete(a.open, addr)
	}
}

// admitUpgrade answers an upgrade over its address's limits with 429 rate_limited and
// Retry-After and reports false; otherwise it returns the address, whose slot the caller gives
// back with addrs.release once the request or its socket is done.
func (g *Gateway) admitUpgrade(w http.ResponseWriter, r *http.Request) (string, bool) {
	addr := g.addrs.key(r)
	reason, retry := g.addrs.admit(addr, time.Now())
	if reason == "" {
		return addr, true
	}
	g.met.upgradesRefused.WithLabelValues(reason).Inc()
	w.Header().Set("Retry-After", ratelimit.RetryAfter(retry))
	msg := "too many WebSocket upgrades from this address; retry later"
	if reason == refusedAddrSockets {
		msg = fmt.Sprintf("this address holds %d sockets, the most it may; close one or retry later", g.addrs.max)
	}
	httpError(w, http.StatusTooManyRequests, string(protocol.CodeRateLimited), msg)
	return "", false
}
