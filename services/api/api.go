// Package api is natter's stateless HTTP API (gofiber/fiber v2): sign-up, login, profiles,
// conversations, history and gateway discovery, and the web client's files (services/web) at
// "/". Every instance is interchangeable: all state lives in the store, the STATE and CHAT
// streams and the gateways bucket. Every change of an account, direct conversation or push token
// is an event on STATE first (projection.Record), then a store write.
//
// Every error answer is {"error":{"code":"...","message":"..."}} with a code from
// protocol.Code or this package's Code* constants. Internal faults are logged once, here, and
// reach the client only as code "internal".
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/origin"
	"github.com/natter-chat/natter/pkg/revision"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// Defaults for the zero values of Config.
const (
	DefaultBodyLimit      = 64 << 10
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultHashWait       = 2 * time.Second
)

// DefaultHashConcurrency is half the CPUs, at least 1: a flood of sign-ups and logins leaves
// the other half to everything else.
func DefaultHashConcurrency() int { return max(1, runtime.NumCPU()/2) }

// Config configures the API server. Token lifetime is not here: it belongs to the auth.Tokens
// passed in Deps, which the gateways share for verification.
type Config struct {
	// Addr is the listen address, host:port; port 0 picks a free port (see Server.Addr).
	Addr string
	// BodyLimit is the largest request body accepted, in bytes; larger ones get 413. 0: 64 KiB.
	BodyLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout bound one connection's reads, writes and
	// keep-alive idleness. 0: the Default* values.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// PasswordCost is the bcrypt cost of new password hashes; 0: bcrypt's default (10).
	PasswordCost int
	// RequestTimeout bounds the store and NATS work of one request; past it the request fails
	// with 503 "unavailable". 0: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Origins are the browser origins whose pages may call the API (CORS, see cors.go); the zero
	// value allows any.
	Origins origin.Policy
	// HashConcurrency bounds the bcrypt computations (sign-ups and logins) running at once;
	// 0: DefaultHashConcurrency(). A request that gets no slot within HashWait (0: DefaultHashWait)
	// is answered 503 "unavailable" with Retry-After.
	HashConcurrency int
	HashWait        time.Duration
	// Limits are the per-address, per-handle and per-account rate limits; see limits.go.
	Limits Limits
	// TLS, when set, serves HTTPS with it; nil serves plain HTTP.
	TLS *tls.Config
	// RefreshIdle ends a session not refreshed for this long; 0: auth.DefaultRefreshIdle.
	// (The access tokens' lifetime is the auth.Tokens' in Deps.)
	RefreshIdle time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client address; empty: the
	// TCP peer is the client (see clientAddr).
	TrustedProxies []netip.Prefix
	// EditWindow is how long after sending a message its sender may edit it; 0: no limit.
	// natter run sets it with the gateway's (--edit-window).
	EditWindow time.Duration
	// BarrierWindow is streams.Options.BarrierWindow: a consent change is answered no sooner
	// than this after its event was stored (streams.Settle). 0: streams.DefaultBarrierWindow.
	BarrierWindow time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("api: addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("api: addr %q: %w", c.Addr, err)
	}
	if c.PasswordCost != 0 && (c.PasswordCost < auth.MinPasswordCost || c.PasswordCost > 31) {
		return fmt.Errorf("api: password cost %d not in %d..31", c.PasswordCost, auth.MinPasswordCost)
	}
	if c.BodyLimit < 0 {
		return fmt.Errorf("api: body limit %d is negative", c.BodyLimit)
	}
	for name, d := range map[string]time.Duration{
		"read timeout": c.ReadTimeout, "write timeout": c.WriteTimeout,
		"idle timeout": c.IdleTimeout, "request timeout": c.RequestTimeout, "hash wait": c.HashWait,
		"refresh idle": c.RefreshIdle,
	} {
		if d < 0 {
			return fmt.Errorf("api: %s %s is negative", name, d)
		}
	}
	if err := streams.ValidBarrierWindow(c.BarrierWindow); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if c.HashConcurrency < 0 {
		return fmt.Errorf("api: hash concurrency %d is negative", c.HashConcurrency)
	}
	return c.Limits.validate()
}

func (c Config) withDefaults() Config {
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.BarrierWindow == 0 {
		c.BarrierWindow = streams.DefaultBarrierWindow
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.HashConcurrency == 0 {
		c.HashConcurrency = DefaultHashConcurrency()
	}
	if c.HashWait == 0 {
		c.HashWait = DefaultHashWait
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

// Deps are the API's collaborators. Log and Metrics may be nil (no logs, no metrics); the others
// are required.
type Deps struct {
	Log      *zap.Logger
	Store    store.Store
	Tokens   *auth.Tokens
	Timeline *timeline.Reader
	JS       jetstream.JetStream
	Metrics  prometheus.Registerer
	// Search answers GET /v1/search; nil: the search process, asked over NATS on JS's connection
	// (wire.Client).
	Search Searcher
	// Consent is the mirror of direct requests, blocks and presence settings; nil: Start
	// opens one of its own on JS (and Stop stops it).
	Consent *consent.Table
}

// Searcher runs a search query: the search process (wire.Client), or an index in this process.
type Searcher interface {
	Search(ctx context.Context, q wire.Query) (wire.Result, error)
}

// Server is the HTTP API. Start it once; Stop it once. Safe for concurrent use.
type Server struct {
	cfg      Config
	log      *zap.Logger
	store    store.Store
	tokens   *auth.Tokens
	auth     *auth.Authenticator // checks the bearer token of every authenticated route
	sessions *auth.Sessions      // logins, refreshes and revocations
	timeline *timeline.Reader
	js       jetstream.JetStream
	searcher Searcher
	// revisions decides edits and deletes (PATCH and DELETE of a message).
	revisions *revision.Decider
	consent   *consent.Table
	ownTable  bool     // consent was opened by Start, and is stopped by Stop
	metrics   *metrics // nil: no metrics
	app       *fiber.App
	hasher    *auth.Hasher // every password hash and check, at most Config.HashConcurrency at once
	limits    rateLimits
	now       func() time.Time // the rate limits' clock; tests set it before Start

	// dummyHash is compared against when a login names no user, so that a wrong handle costs
	// the same bcrypt work as a wrong password.
	dummyHash func() []byte

	mu      sync.Mutex
	ln      net.Listener  // set by Start
	done    chan struct{} // closed when the serving goroutine returns
	stopped bool
}

// New builds a server; it does not listen until Start.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Store == nil:
		return nil, errors.New("api: store is required")
	case deps.Tokens == nil:
		return nil, errors.New("api: tokens are required")
	case deps.Timeline == nil:
		return nil, errors.New("api: timeline is required")
	case deps.JS == nil:
		return nil, errors.New("api: jetstream is required")
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	hasher, err := auth.NewHasher(cfg.PasswordCost, cfg.HashConcurrency, cfg.HashWait)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	sessions, err := auth.NewSessions(deps.Tokens, deps.Store, deps.JS.Conn(), cfg.RefreshIdle)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{sessions: sessions,
		hasher: hasher, limits: newRateLimits(cfg.Limits), now: time.Now,
		cfg: cfg, log: deps.Log.Named("api"), store: deps.Store, tokens: deps.Tokens,
		auth: auth.NewAuthenticator(deps.Tokens, deps.Store), timeline: deps.Timeline, js: deps.JS, searcher: deps.Search, consent: deps.Consent,
		dummyHash: sync.OnceValue(func() []byte {
			h, _ := auth.HashPassword("natter: no such user, hashing for equal timing", cfg.PasswordCost) // < 72 bytes: cannot fail
			return h
		}),
	}
	s.revisions = &revision.Decider{Store: deps.Store, Timeline: deps.Timeline, EditWindow: cfg.EditWindow}
	if s.searcher == nil {
		s.searcher = wire.NewClient(deps.JS.Conn(), cfg.RequestTimeout)
	}
	if deps.Metrics != nil {
		m, err := newMetrics(deps.Metrics)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "natter-api",
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		DisableStartupMessage: true,
		// Params, queries and bodies are copied out of fasthttp's reused buffers, so values
		// handed to the store or kept past the handler are never overwritten by a later request.
		Immutable: true,
		// Errors raised before our middleware runs (body too large, malformed HTTP) land here:
		// they get the CORS headers the middleware would have set, and the coded error.
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			s.corsOnServerError(c)
			s.writeError(c, err)
			return nil
		},
	})
	s.app.Server().Logger = fasthttpLogger{s.log}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.app.Use(s.observe)
	s.app.Use(s.cors())
	s.app.Get("/healthz", s.health)
	s.app.Get("/", s.webPage)
	s.app.Get("/assets/:name", s.webAsset)

	v1 := s.app.Group("/v1")
	v1.Post("/signup", s.signup)
	v1.Post("/login", s.login)
	v1.Get("/discovery", s.discovery)

	v1.Get("/me", s.authenticate, s.getMe)
	v1.Patch("/me", s.authenticate, s.patchMe)
	v1.Delete("/me", s.authenticate, s.deleteMe)
	v1.Get("/users", s.authenticate, s.userByHandle)
	v1.Get("/users/:id", s.authenticate, s.userByID)

	v1.Post("/conversations/direct", s.authenticate, s.openDirect)
	v1.Get("/conversations", s.authenticate, s.listConversations)
	v1.Get("/conversations/:id", s.authenticate, s.getConversation)
	v1.Get("/conversations/:id/messages", s.authenticate, s.messages)
	v1.Patch("/conversations/:id/messages/:seq", s.authenticate, s.editMessage)
	v1.Delete("/conversations/:id/messages/:seq", s.authenticate, s.deleteMessage)

	v1.Post("/groups", s.authenticate, s.createGroup)
	v1.Patch("/conversations/:id", s.authenticate, s.renameGroup)
	v1.Post("/conversations/:id/members", s.authenticate, s.addMembers)
	v1.Delete("/conversations/:id/members/:user", s.authenticate, s.removeMember)
	v1.Post("/conversations/:id/leave", s.authenticate, s.leaveGroup)
	v1.Put("/conversations/:id/members/:user/role", s.authenticate, s.setRole)
	v1.Post("/conversations/:id/owner", s.authenticate, s.transferOwnership)
	v1.Delete("/conversations/:id", s.authenticate, s.deleteGroup)
	v1.Post("/conversations/:id/accept", s.authenticate, s.accept) // a group invitation or a direct request
	v1.Post("/conversations/:id/decline", s.authenticate, s.declineInvitation)
	v1.Get("/invitations", s.authenticate, s.listInvitations)
	v1.Get("/conversations/:id/receipts", s.authenticate, s.receipts)
	v1.Post("/conversations/:id/ignore", s.authenticate, s.ignoreRequest)
	v1.Get("/blocks", s.authenticate, s.listBlocks)
	v1.Put("/blocks/:user", s.authenticate, s.block)
	v1.Delete("/blocks/:user", s.authenticate, s.unblock)
	v1.Get("/me/privacy", s.authenticate, s.getPrivacy)
	v1.Put("/me/privacy", s.authenticate, s.putPrivacy)
	v1.Get("/search", s.authenticate, s.search)
	s.pushRoutes(v1)    // push tokens, logout, mute: push.go
	s.sessionRoutes(v1) // refresh, sessions, logout everywhere: sessions.go
}

// Start binds the listener (so a bad or taken address fails here) and serves in a goroutine the
// server owns until Stop. ctx bounds only the bind.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.stopped {
		return errors.New("api: already started")
	}
	if s.consent == nil {
		t, err := consent.Watch(ctx, s.js, s.log)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		s.consent, s.ownTable = t, true
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		s.stopConsent()
		return fmt.Errorf("api: %w", err) // net.Listen names the address
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln, s.done = ln, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.app.Listener(ln); err != nil {
			s.log.Error("serve failed", zap.Error(err))
		}
	}()
	s.log.Info("api listening", zap.String("addr", ln.Addr().String()), zap.Stringer("allowed_origins", s.cfg.Origins))
	return nil
}

// Addr is the bound host:port; empty before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the base URL of the API, http:// or https://; empty before Start.
func (s *Server) URL() string {
	addr := s.Addr()
	switch {
	case addr == "":
		return ""
	case s.cfg.TLS != nil:
		return "https://" + addr
	default:
		return "http://" + addr
	}
}

// Stop stops accepting, lets in-flight requests finish until ctx ends, and waits for the serving
// goroutine. Stopping a server that never started is a no-op.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil || s.stopped {
		s.stopped = true
		return nil
	}
	s.stopped = true
	defer s.stopConsent()
	err := s.app.ShutdownWithContext(ctx)
	// fasthttp's shutdown is a no-op if its Serve has not registered the listener yet; closing it
	// ourselves makes that Serve return at once. A second close only reports "already closed".
	_ = s.ln.Close()
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("api: stop: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	s.log.Info("api stopped")
	return nil
}

func (s *Server) stopConsent() {
	if s.ownTable {
		s.consent.Stop()
		s.ownTable = false
	}
}

// Module provides *Server from Config and the Deps types in the graph (prometheus.Registerer is
// optional) and runs it with the application's lifecycle.
var Module = fx.Module("api",
	fx.Provide(provide),
	fx.Invoke(func(*Server) {}),
)

type moduleParams struct {
	fx.In
	Lifecycle fx.Lifecycle

	Config   Config
	Log      *zap.Logger
	Store    store.Store
	Tokens   *auth.Tokens
	Timeline *timeline.Reader
	JS       jetstream.JetStream
	Metrics  prometheus.Registerer `optional:"true"`
	Consent  *consent.Table        `optional:"true"`
}

func provide(p moduleParams) (*Server, error) {
	s, err := New(p.Config, Deps{
		Log: p.Log, Store: p.Store, Tokens: p.Tokens, Timeline: p.Timeline, JS: p.JS, Metrics: p.Metrics, Consent: p.Consent,
	})
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.StartStopHook(s.Start, s.Stop))
	return s, nil
}

func (s *Server) health(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// fasthttpLogger routes fasthttp's own messages to zap: accept errors and the like at warn, and
// the failure of one client's connection (a body over the limit, a malformed request, a failed
// TLS handshake) at debug, since any client can cause as many of those as it likes and each has
// been answered (413, 400) already.
type fasthttpLogger struct{ log *zap.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	level := zap.WarnLevel
	if strings.HasPrefix(format, "error when serving connection") {
		level = zap.DebugLevel
	}
	l.log.Log(level, "fasthttp", zap.String("message", fmt.Sprintf(format, args...)))
}
