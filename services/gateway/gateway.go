// Package gateway terminates client WebSockets: it authenticates on upgrade, validates every
// frame, publishes sends to the CHAT stream, catches a (re)connecting device up from its cursor,
// delivers what fanout routes to it, and keeps its devices' routes and its own discovery entry
// fresh. It holds no state but its sockets.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/origin"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/ratelimit"
	"github.com/natter-chat/natter/pkg/revision"
	"github.com/natter-chat/natter/pkg/routing"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// Config tunes a gateway.
type Config struct {
	Addr string // listen address; port 0 picks a free one
	// ID names the gateway in subjects and buckets; empty picks a random one.
	ID string
	// PublicURL is the ws:// or wss:// URL clients are told to use; empty derives it from Addr
	// (wss:// with TLS).
	PublicURL string
	// TLS, when set, serves WebSockets over TLS (wss://) with it; nil serves plain ws://.
	TLS *tls.Config
	// HeartbeatInterval is how often the server pings each socket; HeartbeatTimeout how long it
	// waits for the pong before closing with CloseHeartbeatTimeout.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// SendQueue is how many frames may wait for one socket before it may be closed as slow
	// (CloseSlowConsumer): it is, once its writer has been stuck in one write for
	// SlowClientAfter (the client does not read), and at HardSendQueue frames in any case.
	SendQueue       int
	HardSendQueue   int
	SlowClientAfter time.Duration
	// WriteTimeout bounds one write to a socket: it gets between WriteTimeout and twice it.
	WriteTimeout time.Duration
	// WriteInterval is the least time between two writes to one socket while frames keep coming
	// to it: what arrives sooner waits and goes out in the next write, with whatever else came.
	// A frame to a socket not written to for WriteInterval goes out at once. 0: every batch is
	// written as soon as it is queued.
	WriteInterval time.Duration
	// PublishTimeout bounds a send's wait for the stream's acknowledgement.
	PublishTimeout time.Duration
	// PublishWindow bounds the sends of the whole gateway waiting for the stream's
	// acknowledgement, SocketPublishWindow those of one socket. A socket that finds either full is
	// not read until a send is answered: backpressure to the client, never to the hub.
	PublishWindow       int
	SocketPublishWindow int
	// RouteRefresh is how often routes are re-put to restart their TTL (well under the TTL).
	RouteRefresh time.Duration
	// Announce is how often the gateway refreshes its discovery entry (well under its TTL).
	Announce time.Duration
	// FramesPerSecond and Burst rate-limit client frames per connection.
	FramesPerSecond float64
	Burst           int
	// MembershipConsumer is the fanout consumer whose ack floor says up to which seq membership
	// changes are in the store (fanout applies them in stream order before it acks);
	// MembershipWait bounds how long a catch-up waits for it to reach the head.
	MembershipConsumer string
	MembershipWait     time.Duration
	// FanoutPartitions is streams.Options.FanoutPartitions: it names the fanout consumer that
	// delivers to this gateway. MaxDeliveryLag bounds how far that consumer's ack floor may trail
	// the gateway's latest acknowledged send before new sends wait, each at most DeliveryLagWait
	// (see awaitDelivery); 0 turns the backpressure off.
	FanoutPartitions int
	MaxDeliveryLag   uint64
	DeliveryLagWait  time.Duration
	// Origins are the browser origins whose pages may open a socket (see checkOrigin); the zero
	// value allows any: natter authenticates with bearer tokens, not cookies, so a cross-origin
	// socket carries no ambient authority.
	Origins origin.Policy
	// EditWindow is how long after sending a message its sender may edit it; 0: no limit.
	EditWindow time.Duration
	// BarrierWindow is streams.Options.BarrierWindow: a session reads its catch-up's head no
	// sooner than this after its route was stored (streams.Settle).
	BarrierWindow time.Duration
	// UpgradesPerAddr limits WebSocket upgrades per client address (a token bucket, checked
	// before anything else of the request); the zero Rate or ratelimit.Off: no limit.
	// SocketsPerAddr bounds the sockets one client address holds open at once; 0: no bound.
	// Both refuse with 429 rate_limited and Retry-After. AddrLimitKeys bounds the addresses the
	// upgrade limit remembers (0: ratelimit.DefaultMaxKeys), forgetting the least recently seen.
	UpgradesPerAddr ratelimit.Rate
	SocketsPerAddr  int
	AddrLimitKeys   int
	// IdleTimeout closes a kept-alive HTTP connection (one that asked /healthz, or whose upgrade
	// was refused) that sends no next request for this long; 0: DefaultIdleTimeout. Sockets are
	// not HTTP connections any more and have their heartbeat instead.
	IdleTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client address of the
	// per-address limits (clientaddr.Key); empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
}

// DefaultIdleTimeout is Config.IdleTimeout's default, the API's too.
const DefaultIdleTimeout = 60 * time.Second

// Defaults of the per-address limits; see docs/security.md for why these.
var (
	DefaultUpgradesPerAddr = ratelimit.Rate{N: 300, Per: time.Minute}
	DefaultSocketsPerAddr  = 1000
)

// LiftAddrLimits lifts the per-address limits (UpgradesPerAddr, SocketsPerAddr): for tests and
// benchmarks that open many sockets from one address, and natter run --rate-limits=false.
func (c *Config) LiftAddrLimits() { c.UpgradesPerAddr, c.SocketsPerAddr = ratelimit.Off, 0 }

// DefaultConfig suits one machine.
func DefaultConfig() Config {
	return Config{
		Addr:                "127.0.0.1:8081",
		HeartbeatInterval:   20 * time.Second,
		HeartbeatTimeout:    10 * time.Second,
		SendQueue:           1024, // live events and answers only (catch-up is paced separately); allocated as frames come, 24 bytes a slot
		HardSendQueue:       8192, // a frame is shared by every socket it goes to: a slot is what a socket adds
		SlowClientAfter:     2 * time.Second,
		WriteTimeout:        10 * time.Second,
		WriteInterval:       2 * time.Millisecond,
		PublishTimeout:      5 * time.Second,
		PublishWindow:       256,
		SocketPublishWindow: 32,
		RouteRefresh:        streams.DefaultOptions().RouteRefresh(),
		Announce:            streams.DefaultOptions().GatewayRefresh(),
		FramesPerSecond:     100,
		Burst:               200,
		MembershipConsumer:  streams.FanoutConsumer,
		MembershipWait:      2 * time.Second,
		FanoutPartitions:    1,
		MaxDeliveryLag:      4096, // two of fanout's max ack pending: about a second of its flat-out rate here
		DeliveryLagWait:     2 * time.Second,
		EditWindow:          revision.DefaultEditWindow,
		BarrierWindow:       streams.DefaultBarrierWindow,
		UpgradesPerAddr:     DefaultUpgradesPerAddr,
		SocketsPerAddr:      DefaultSocketsPerAddr,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("gateway: addr is required")
	case c.ID != "" && !streams.ValidToken(c.ID):
		return fmt.Errorf("gateway: id %q must be 1-64 characters of [A-Za-z0-9_-]", c.ID)
	case c.HeartbeatInterval <= 0 || c.HeartbeatTimeout <= 0:
		return errors.New("gateway: heartbeat interval and timeout must be positive")
	case c.SendQueue < 16:
		return fmt.Errorf("gateway: send queue %d too small (min 16)", c.SendQueue)
	case c.HardSendQueue < c.SendQueue:
		return fmt.Errorf("gateway: hard send queue %d below the send queue %d", c.HardSendQueue, c.SendQueue)
	case c.SlowClientAfter <= 0:
		return errors.New("gateway: slow client time must be positive")
	case c.WriteTimeout <= 0 || c.PublishTimeout <= 0 || c.RouteRefresh <= 0 || c.Announce <= 0:
		return errors.New("gateway: timeouts and refresh intervals must be positive")
	case c.PublishWindow < 1 || c.SocketPublishWindow < 1:
		return errors.New("gateway: publish windows must be at least 1")
	case c.EditWindow < 0:
		return errors.New("gateway: the edit window must not be negative")
	case c.WriteInterval < 0 || c.WriteInterval > time.Second:
		return fmt.Errorf("gateway: write interval %s must be from 0 to 1s", c.WriteInterval)
	case c.FramesPerSecond <= 0 || c.Burst < 1:
		return errors.New("gateway: rate limit must be positive")
	case c.MembershipConsumer == "" || c.MembershipWait <= 0:
		return errors.New("gateway: membership consumer and wait are required")
	case c.FanoutPartitions < 1:
		return errors.New("gateway: fanout partitions must be at least 1")
	case c.MaxDeliveryLag > 0 && c.DeliveryLagWait <= 0:
		return errors.New("gateway: delivery lag wait must be positive")
	case c.IdleTimeout < 0:
		return errors.New("gateway: idle timeout must not be negative")
	case c.SocketsPerAddr < 0 || c.AddrLimitKeys < 0:
		return errors.New("gateway: sockets per address and address limit keys must not be negative")
	}
	if err := streams.ValidBarrierWindow(c.BarrierWindow); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := c.UpgradesPerAddr.Validate("gateway: upgrades per address"); err != nil {
		return err
	}
	return nil
}

// Deps are what a gateway needs from the process.
type Deps struct {
	fx.In
	Log      *zap.Logger
	NC       *nats.Conn
	JS       jetstream.JetStream
	Store    store.Store
	Tokens   *auth.Tokens
	Timeline *timeline.Reader
	Metrics  prometheus.Registerer `optional:"true"`
	// Consent decides whose presence a user may see and what catch-up replays to them; nil:
	// the gateway follows STATE with a mirror of its own.
	Consent *consent.Table `optional:"true"`
	// Local, if set, is where this gateway attaches itself, so that fanout and presence in
	// the same process deliver to it by direct calls; it takes deliveries over NATS as well.
	Local *streams.LocalGateways `optional:"true"`
}

// Gateway serves WebSockets.
type Gateway struct {
	cfg  Config
	deps Deps
	log  *zap.Logger
	met  *metrics
	hub  *hub
	// addrs bounds the upgrades and open sockets of each client address.
	addrs *addrLimits
	// outbox bounds and spaces every socket's writes (see outbox).
	outbox outboxLimits
	pub    *publisher
	// revisions decides edit and delete frames.
	revisions *revision.Decider

	routes     *routing.Registrar
	gwKV       jetstream.KeyValue
	presenceKV jetstream.KeyValue
	consent    *consent.Table
	ownTable   bool // consent is this gateway's own mirror, stopped with it
	chat       jetstream.Stream
	srv        *http.Server
	ln         net.Listener
	sub        *nats.Subscription // deliveries over NATS
	detach     func()             // from deps.Local: deliveries by direct calls
	revokedSub *nats.Subscription // streams.SessionRevokedAll -> hub.onRevoked
	accounts   *nats.Subscription // account.deleted.*: closes the sockets of deleted accounts
	notices    func()             // stops the consent table's request notices (hub.onRequest)
	stopping   chan struct{}
	loops      sync.WaitGroup
	conns      sync.WaitGroup
	membership consumer.Floor // fanout's ack floor: membership changes applied up to it
	delivery   deliveryFloor  // the ack floor of the fanout partition delivering to this gateway
	auth       *auth.Authenticator
}

// New returns a gateway; Start binds it.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = "gw" + ulid.Make().String()
	}
	g := &Gateway{cfg: cfg, deps: deps, log: deps.Log.Named("gateway").With(zap.String("gateway", cfg.ID)),
		met: newMetrics(deps.Metrics), stopping: make(chan struct{}), auth: auth.NewAuthenticator(deps.Tokens, deps.Store)}
	g.membership = consumer.Floor{Stream: streams.ChatStream, Consumer: cfg.MembershipConsumer, Refresh: floorRefresh}
	g.delivery.Floor = consumer.Floor{Stream: streams.ChatStream, Refresh: floorRefresh,
		Consumer: streams.FanoutConsumerName(streams.FanoutPartition(cfg.ID, cfg.FanoutPartitions), cfg.FanoutPartitions)}
	g.hub = newHub(g)
	g.addrs = newAddrLimits(cfg)
	g.outbox = outboxLimits{soft: cfg.SendQueue, hard: cfg.HardSendQueue, slowAfter: cfg.SlowClientAfter, interval: cfg.WriteInterval}
	g.revisions = &revision.Decider{Store: deps.Store, Timeline: deps.Timeline, EditWindow: cfg.EditWindow}
	return g, nil
}

// ID is the gateway's id.
func (g *Gateway) ID() string { return g.cfg.ID }

// Addr is the bound listen address.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// URL is the WebSocket URL clients use.
func (g *Gateway) URL() string {
	if g.cfg.PublicURL != "" {
		return g.cfg.PublicURL
	}
	if g.cfg.TLS != nil {
		return "wss://" + g.Addr() + "/v1/ws"
	}
	return "ws://" + g.Addr() + "/v1/ws"
}

// Start binds the listener, subscribes to deliveries, announces itself and serves.
func (g *Gateway) Start(ctx context.Context) error {
	kv, err := g.deps.JS.KeyValue(ctx, streams.RoutesBucket)
	if err != nil {
		return fmt.Errorf("gateway: routes bucket: %w", err)
	}
	g.routes = routing.NewRegistrar(kv, g.cfg.ID)
	if g.gwKV, err = g.deps.JS.KeyValue(ctx, streams.GatewaysBucket); err != nil {
		return fmt.Errorf("gateway: gateways bucket: %w", err)
	}
	if g.presenceKV, err = g.deps.JS.KeyValue(ctx, streams.PresenceBucket); err != nil {
		return fmt.Errorf("gateway: presence bucket: %w", err)
	}
	if g.chat, err = g.deps.JS.Stream(ctx, streams.ChatStream); err != nil {
		return fmt.Errorf("gateway: chat stream: %w", err)
	}
	if g.consent = g.deps.Consent; g.consent == nil {
		if g.consent, err = consent.Watch(ctx, g.deps.JS, g.log); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		g.ownTable = true
	}
	// Direct requests are not CHAT events: the gateway tells its own sockets of them as its
	// consent mirror applies them (every gateway follows CONSENT anyway).
	g.notices = g.consent.OnRequest(g.hub.onRequest)
	if err := g.subscribeDeliveries(); err != nil {
		g.notices()
		return err
	}
	// Revocations are core NATS too: a lost one (dropped or missed while disconnected) is
	// covered the way lost deliveries are, by closing every socket (see maintain), after which
	// the upgrade's token check refuses the revoked sessions.
	g.revokedSub, err = g.deps.NC.Subscribe(streams.SessionRevokedAll, g.hub.onRevoked)
	if err != nil {
		_ = g.unsubscribeDeliveries()
		return fmt.Errorf("gateway: subscribe session revocations: %w", err)
	}
	if g.accounts, err = g.deps.NC.Subscribe(streams.AccountDeletedAll, g.hub.onAccountDeleted); err != nil {
		_ = g.unsubscribeDeliveries()
		_ = g.revokedSub.Unsubscribe()
		return fmt.Errorf("gateway: subscribe account events: %w", err)
	}
	if err := g.deps.NC.Flush(); err != nil {
		return fmt.Errorf("gateway: flush subscription: %w", err)
	}
	g.ln, err = net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		_ = g.unsubscribeDeliveries()
		_ = g.revokedSub.Unsubscribe()
		_ = g.accounts.Unsubscribe()
		return fmt.Errorf("gateway: %w", err) // net.Listen names the address
	}
	if g.pub, err = newPublisher(g); err != nil {
		_ = g.ln.Close()
		_ = g.unsubscribeDeliveries()
		_ = g.revokedSub.Unsubscribe()
		_ = g.accounts.Unsubscribe()
		return fmt.Errorf("gateway: publisher: %w", err)
	}
	if g.cfg.TLS != nil {
		g.ln = tls.NewListener(g.ln, g.cfg.TLS)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", g.serveWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	idle := g.cfg.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	// Without IdleTimeout (and ReadTimeout, which sockets cannot have) net/http waits for a
	// kept-alive connection's next request forever: idle connections would cost nothing to hold.
	g.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle, ErrorLog: httpErrorLog(g.log)}
	if err := g.announce(ctx); err != nil {
		g.log.Warn("first announce failed", zap.Error(err))
	}
	g.loops.Add(3 + duplicateAnswerers)
	for range duplicateAnswerers {
		go g.pub.answerDuplicates()
	}
	go g.pub.expireLate()
	go func() {
		defer g.loops.Done()
		if err := g.srv.Serve(g.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("serve", zap.Error(err))
		}
	}()
	go g.maintain()
	g.log.Info("gateway listening", zap.String("url", g.URL()), zap.Stringer("allowed_origins", g.cfg.Origins))
	return nil
}

// Stop stops accepting sockets, closes every open one with CloseShutdown (clients reconnect,
// through discovery, and sync), and withdraws the gateway from discovery.
func (g *Gateway) Stop(ctx context.Context) error {
	if g.srv == nil {
		return nil
	}
	close(g.stopping)
	err := g.srv.Shutdown(ctx)
	g.hub.closeAll(protocol.CloseShutdown, "server shutting down")
	done := make(chan struct{})
	go func() { g.conns.Wait(); g.loops.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("gateway: connections still open at stop: %w", ctx.Err()))
	}
	g.pub.drain(ctx)
	g.notices()
	err = errors.Join(err, g.unsubscribeDeliveries(), g.revokedSub.Unsubscribe(), g.accounts.Unsubscribe())
	if derr := g.gwKV.Delete(context.WithoutCancel(ctx), g.cfg.ID); derr != nil {
		g.log.Warn("withdraw from discovery", zap.Error(derr))
	}
	if g.ownTable {
		g.consent.Stop()
	}
	return err
}

// subscribeDeliveries starts taking deliveries: over NATS, and by direct calls if deps.Local
// is set.
func (g *Gateway) subscribeDeliveries() error {
	sub, err := g.deps.NC.Subscribe(streams.DeliverSubject(g.cfg.ID), g.hub.onDelivery)
	if err != nil {
		return fmt.Errorf("gateway: subscribe deliveries: %w", err)
	}
	if err := sub.SetPendingLimits(1<<20, 1<<30); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("gateway: pending limits: %w", err)
	}
	g.sub, g.detach = sub, func() {}
	if g.deps.Local != nil {
		g.detach = g.deps.Local.Attach(g.cfg.ID, g.hub.receive)
	}
	return nil
}

// unsubscribeDeliveries stops taking deliveries, both ways.
func (g *Gateway) unsubscribeDeliveries() error {
	g.detach()
	if err := g.sub.Unsubscribe(); err != nil {
		return fmt.Errorf("gateway: unsubscribe deliveries: %w", err)
	}
	return nil
}

// maintain refreshes the discovery entry and the routes, and watches for lost deliveries.
func (g *Gateway) maintain() {
	defer g.loops.Done()
	announce := time.NewTicker(g.cfg.Announce)
	refresh := time.NewTicker(g.cfg.RouteRefresh)
	check := time.NewTicker(time.Second)
	defer announce.Stop()
	defer refresh.Stop()
	defer check.Stop()
	var dropped int
	reconnects := g.deps.NC.Stats().Reconnects
	for {
		select {
		case <-g.stopping:
			return
		case <-announce.C:
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Announce)
			if err := g.announce(ctx); err != nil {
				g.log.Warn("announce", zap.Error(err))
			}
			cancel()
		case <-refresh.C:
			g.hub.refreshRoutes()
		case <-check.C:
			// Deliveries are core NATS: if any were dropped (slow subscription) or could have been
			// missed (the connection to NATS was lost), every socket may have a gap. Closing with
			// CloseResync makes each client reconnect and sync from its cursor: a gap never stays.
			// The same holds for session revocations: a socket whose revocation was lost
			// reconnects, and its token is refused.
			d, _ := g.sub.Dropped()
			rd, _ := g.revokedSub.Dropped()
			d += rd
			r := g.deps.NC.Stats().Reconnects
			if d > dropped || r > reconnects {
				g.log.Warn("deliveries may have been lost; asking every client to resync",
					zap.Int("dropped", d-dropped), zap.Uint64("reconnects", r-reconnects))
				g.hub.closeAll(protocol.CloseResync, "missed deliveries; reconnect and sync")
			}
			dropped, reconnects = d, r
		}
	}
}

func (g *Gateway) announce(ctx context.Context) error {
	info, err := json.Marshal(streams.GatewayInfo{ID: g.cfg.ID, URL: g.URL(), Connections: g.hub.count(), Updated: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	_, err = g.gwKV.Put(ctx, g.cfg.ID, info)
	return err
}

// authTimeout bounds the account read of an upgrade's token check.
const authTimeout = 5 * time.Second

// authenticate answers an upgrade request whose token auth.Authenticator does not accept — the
// check the API makes on every authenticated route — and returns its claims otherwise. A refused
// token gets 401; a store that cannot answer gets 503, and the client retries.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) (auth.Claims, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), authTimeout)
	defer cancel()
	claims, err := g.auth.Authenticate(ctx, upgradeToken(r))
	// Same check, same answers as the API's: a refused token (invalid, expired, foreign-signed, of
	// an ended session or a deleted account) gets 401.
	switch {
	case errors.Is(err, auth.ErrRefused):
		httpError(w, http.StatusUnauthorized, "unauthorized", "a valid access token is required (Authorization: Bearer or ?token=)")
		return auth.Claims{}, false
	case err != nil:
		g.log.Warn("upgrade: token not checked", zap.Error(err))
		httpError(w, http.StatusServiceUnavailable, "unavailable", "the access token could not be checked; retry")
		return auth.Claims{}, false
	}
	return claims, true
}

// upgradeToken is the access token of an upgrade request: "Authorization: Bearer" (scheme
// matched without regard to case) wins over ?token=.
func upgradeToken(r *http.Request) string {
	if token, ok := auth.BearerToken(r.Header.Get("Authorization")); ok {
		return token
	}
	return r.URL.Query().Get("token")
}

// Module runs a gateway in an fx graph.
var Module = fx.Module("gateway",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, g *Gateway) {
		lc.Append(fx.Hook{OnStart: g.Start, OnStop: g.Stop})
	}),
)

// recordDevice makes the device known: a device seen for the first time is a device_registered
// event (so the store can be rebuilt from STATE); one already known only has its last-seen
// time moved, in the store (last seen is not an event: it would put every connect on STATE).
func (g *Gateway) recordDevice(ctx context.Context, userID, deviceID, platform string) error {
	devices, err := g.deps.Store.Devices(ctx, userID)
	if err != nil {
		return fmt.Errorf("devices of %s: %w", userID, err)
	}
	now := time.Now().UTC()
	if slices.ContainsFunc(devices, func(d store.Device) bool { return d.DeviceID == deviceID }) {
		return g.deps.Store.PutDevice(ctx, store.Device{UserID: userID, DeviceID: deviceID, Platform: platform,
			CreatedAt: now, LastSeen: now})
	}
	ev := streams.StateEvent{Kind: streams.StateDeviceRegistered, At: now.UnixMilli(),
		Device: &streams.DeviceState{UserID: userID, DeviceID: deviceID, Platform: platform}}
	if _, err := projection.Record(ctx, g.deps.JS, g.deps.Store, ev); err != nil {
		return fmt.Errorf("register device %s/%s: %w", userID, deviceID, err)
	}
	return nil
}
