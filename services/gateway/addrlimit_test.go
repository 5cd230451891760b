package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/pkg/ratelimit"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// upgradeAs dials a socket for token as if from client address addr (the gateway trusts
// 127.0.0.1 as a proxy; X-Forwarded-For comes in two lines, the client's say-so first). It
// returns the open socket (its welcome read), or nil and the refusal's status, error code and
// Retry-After.
func upgradeAs(t *testing.T, s *apptest.System, addr, token, device string) (*websocket.Conn, int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	h := http.Header{}
	h.Add("X-Forwarded-For", "198.51.100.1") // written by the client: proves nothing
	h.Add("X-Forwarded-For", addr)
	c, resp, err := websocket.Dial(ctx, s.WSURL+"?device="+device+"&token="+token, &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		_, data, err := c.Read(ctx)
		var f apptest.Frame
		if err != nil || json.Unmarshal(data, &f) != nil || f.Type != protocol.TypeWelcome {
			t.Fatalf("from %s: first frame %s, %v; want welcome", addr, data, err)
		}
		return c, http.StatusSwitchingProtocols, "", ""
	}
	if resp == nil {
		t.Fatalf("from %s: no HTTP answer: %v", addr, err)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if derr := json.NewDecoder(resp.Body).Decode(&body); derr != nil || body.Error.Message == "" {
		t.Fatalf("from %s: status %d, body not natter's JSON error: %v", addr, resp.StatusCode, derr)
	}
	return nil, resp.StatusCode, body.Error.Code, resp.Header.Get("Retry-After")
}

func wantRefused(t *testing.T, what string, status int, code, retry string, minRetry, maxRetry int) {
	t.Helper()
	secs, err := strconv.Atoi(retry)
	if status != http.StatusTooManyRequests || code != string(protocol.CodeRateLimited) || err != nil || secs < minRetry || secs > maxRetry {
		t.Fatalf("%s: %d %q Retry-After %q; want 429 rate_limited with Retry-After in %d..%d", what, status, code, retry, minRetry, maxRetry)
	}
}

func addrLimited(upgrades ratelimit.Rate, sockets int) apptest.Option {
	return func(c *app.Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.Gateway.UpgradesPerAddr, c.Gateway.SocketsPerAddr = upgrades, sockets
		c.Gateway.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}
}

// TestUpgradesPerAddressAreLimited: one client address gets its burst of upgrades, then 429
// rate_limited with Retry-After before its token is even looked at (a garbage token gets 429,
// not 401); refused upgrades take nothing from the bucket; another address is not affected; the
// refusals are counted.
func TestUpgradesPerAddressAreLimited(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, addrLimited(ratelimit.Rate{N: 3, Per: time.Hour}, 0))
	alice := s.SignUp("alice")
	const a, b = "203.0.113.5", "203.0.113.6"
	for i := range 3 {
		c, status, code, _ := upgradeAs(t, s, a, alice.Token, "d"+strconv.Itoa(i))
		if c == nil {
			t.Fatalf("upgrade %d of the burst: %d %s", i, status, code)
		}
		c.CloseNow()
	}
	for _, token := range []string{alice.Token, "garbage"} {
		_, status, code, retry := upgradeAs(t, s, a, token, "over")
		wantRefused(t, "over the burst", status, code, retry, 1200-60, 1200) // one token per 20 minutes
	}
	c, status, code, _ := upgradeAs(t, s, b, alice.Token, "other")
	if c == nil {
		t.Fatalf("another address: %d %s", status, code)
	}
	c.CloseNow()
	if _, status, code, _ := upgradeAs(t, s, b, "garbage", "bad"); status != http.StatusUnauthorized {
		t.Fatalf("another address, a garbage token: %d %s; want 401", status, code)
	}
	if n := s.Metric(`natter_gateway_upgrades_refused_total{reason="addr_rate"}`); n != 2 {
		t.Fatalf("addr_rate refusals counted: %v, want 2", n)
	}
}

// TestSocketsPerAddressAreBounded: one client address holds at most SocketsPerAddr sockets at
// once; the next upgrade gets 429 rate_limited with Retry-After; an upgrade refused for its token
// holds no slot; a closed socket gives its slot back.
func TestSocketsPerAddressAreBounded(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, addrLimited(ratelimit.Off, 2))
	alice := s.SignUp("alice")
	const a = "2001:db8:1:2::7"
	for range 3 {
		if _, status, _, _ := upgradeAs(t, s, a, "garbage", "bad"); status != http.StatusUnauthorized {
			t.Fatalf("a garbage token: %d, want 401", status)
		}
	}
	first, status, code, _ := upgradeAs(t, s, a, alice.Token, "one")
	if first == nil {
		t.Fatalf("first socket: %d %s", status, code)
	}
	// Another address of the same /64 is the same client.
	second, status, code, _ := upgradeAs(t, s, "2001:db8:1:2::8", alice.Token, "two")
	if second == nil {
		t.Fatalf("second socket: %d %s", status, code)
	}
	defer second.CloseNow()
	_, status, code, retry := upgradeAs(t, s, a, alice.Token, "three")
	wantRefused(t, "a third socket", status, code, retry, 1, 60)
	if c, status, code, _ := upgradeAs(t, s, "2001:db8:1:3::7", alice.Token, "elsewhere"); c == nil {
		t.Fatalf("another /64: %d %s", status, code)
	} else {
		c.CloseNow()
	}
	if err := first.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	// The slot comes back once the gateway has seen the socket end.
	deadline := time.Now().Add(wait)
	for {
		c, status, code, _ := upgradeAs(t, s, a, alice.Token, "three")
		if c != nil {
			c.CloseNow()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a close: still %d %s", status, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.Metric(`natter_gateway_upgrades_refused_total{reason="addr_sockets"}`); n < 1 {
		t.Fatalf("addr_sockets refusals counted: %v", n)
	}
}

// TestAddressLimitsHoldUnderAFlood: upgrades sent all at once from one address open exactly as
// many sockets as the limits allow: the burst of the rate limit, and the socket bound.
func TestAddressLimitsHoldUnderAFlood(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		upgrades ratelimit.Rate
		sockets  int
		want     int
	}{
		{"upgrade rate", ratelimit.Rate{N: 5, Per: time.Hour}, 0, 5},
		{"socket bound", ratelimit.Off, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := apptest.Start(t, addrLimited(tc.upgrades, tc.sockets))
			alice := s.SignUp("alice")
			statuses := floodUpgrades(t, s, alice.Token, 24)
			if statuses[http.StatusSwitchingProtocols] != tc.want || statuses[http.StatusTooManyRequests] != 24-tc.want {
				t.Fatalf("24 upgrades at once from one address: %v, want %d opened and the rest 429", statuses, tc.want)
			}
		})
	}
}

// floodUpgrades dials n sockets at once from one client address and counts the answers by
// status (101: opened); the sockets stay open until the test ends.
func floodUpgrades(t *testing.T, s *apptest.System, token string, n int) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		failure  error
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			h := http.Header{"X-Forwarded-For": {"203.0.113.77"}}
			c, resp, err := websocket.Dial(ctx, s.WSURL+"?device=f"+strconv.Itoa(i)+"&token="+token, &websocket.DialOptions{HTTPHeader: h})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				statuses[http.StatusSwitchingProtocols]++
				t.Cleanup(func() { c.CloseNow() })
			case resp == nil:
				failure = err
			default:
				statuses[resp.StatusCode]++
			}
		})
	}
	close(start)
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	return statuses
}

// TestIdleHTTPConnectionsAreClosed: a connection that asked one question and then keeps quiet
// is closed after the idle timeout, so idle connections cannot be piled up for free.
func TestIdleHTTPConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, func(c *app.Config) { c.Gateway.IdleTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", s.Run.Gateway.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n, err := r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle kept-alive connection: read %d, %v; want it closed (EOF) well within %s", n, err, wait)
	}
}
