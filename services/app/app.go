// Package app assembles one natter process: one fx graph holding the NATS connection (to an
// embedded server or an external cluster), the stream definitions, the store, the token service
// and the components named by the targets. cmd/natter and the in-process tests both build it.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/dig"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/origin"
	"github.com/natter-chat/natter/pkg/revision"
	"github.com/natter-chat/natter/pkg/spareproc"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/pkg/store/remote"
	"github.com/natter-chat/natter/pkg/store/scylla"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/pkg/tlsx"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/fanout"
	"github.com/natter-chat/natter/services/gateway"
	"github.com/natter-chat/natter/services/persister"
	"github.com/natter-chat/natter/services/presence"
	"github.com/natter-chat/natter/services/projector"
	"github.com/natter-chat/natter/services/push"
	"github.com/natter-chat/natter/services/recovery"
	"github.com/natter-chat/natter/services/search"
	"github.com/natter-chat/natter/streams"
)

// Targets are the components a process can run.
const (
	TargetGateway   = "gateway"
	TargetAPI       = "api"
	TargetPersister = "persister"
	TargetFanout    = "fanout"
	TargetPresence  = "presence"
	TargetPush      = "push"
	// TargetSearch indexes CHAT for search (index under <DataDir>/search) and answers the API's
	// queries over NATS; run it in one process of a deployment.
	TargetSearch = "search"
	// TargetNATS runs only the embedded NATS node (no --nats-url), e.g. one node of a cluster.
	TargetNATS = "nats"
	// TargetStore serves this process's store (pebble or scylla) over NATS to processes that run
	// with StoreKind "remote": the way to share the embedded Pebble between processes.
	TargetStore = "store"
)

// AllTargets is what `natter run` starts by default.
var AllTargets = []string{TargetGateway, TargetAPI, TargetPersister, TargetFanout, TargetPresence, TargetPush, TargetSearch}

// KnownTargets are all targets a process can be given.
var KnownTargets = append(slices.Clone(AllTargets), TargetNATS, TargetStore)

// Config is everything one process needs.
type Config struct {
	Targets []string
	DataDir string
	// NATSURL names an external NATS server or cluster; empty starts an embedded server.
	NATSURL string
	NATS    natsx.ServerConfig // the embedded server; Dir defaults to <DataDir>/nats
	// NATSClient authenticates and secures the connections to an external NATS (NATSURL); the
	// connections to the embedded server stay on this machine (loopback, or in-process) and
	// need neither.
	NATSClient natsx.ClientConfig
	// TLSCert and TLSKey, when set, serve the API over HTTPS and the gateway over wss:// with
	// this certificate; Running.ReloadTLS reads the files again.
	TLSCert, TLSKey string
	Streams         streams.Options
	// ApplyDefinitions creates or updates the streams, buckets and consumers at start. It needs
	// the JetStream permissions of an administrator; least-privilege users (deploy/nats) turn it
	// off and run natter init with the admin user instead.
	ApplyDefinitions bool
	// JWTSecret signs access tokens; empty reads or creates <DataDir>/jwt.secret. Every process
	// of one deployment must share it.
	JWTSecret []byte
	// AccessTTL is the lifetime of access tokens; sessions last longer (API.RefreshIdle) and
	// renew them at POST /v1/token/refresh.
	AccessTTL time.Duration
	// MetricsAddr serves /metrics and /healthz; empty disables it.
	MetricsAddr string
	// Gatherers are served on MetricsAddr's /metrics beside the process's own metrics: natter
	// run adds its search process's this way.
	Gatherers []prometheus.Gatherer
	// Pprof also serves Go's profiles (/debug/pprof/) on MetricsAddr: for profiling a running
	// process; they reveal internals, so keep that address private.
	Pprof bool
	// SpareProc lets Go run one more thread of Go code than the process has CPUs while the
	// machine has idle CPU (pkg/spareproc): shorter waits behind bursts of CPU-bound work. It
	// changes GOMAXPROCS for the whole process, so tests that share one process leave it off;
	// a GOMAXPROCS environment variable turns it off.
	SpareProc bool
	// StoreKind is "pebble" (embedded, under DataDir), "scylla" (Scylla below) or "remote" (the
	// store another process serves over NATS with TargetStore; Remote below).
	StoreKind string
	Scylla    scylla.Config
	Remote    remote.ClientConfig
	// StoreServer tunes TargetStore.
	StoreServer remote.ServerConfig
	// Store, when set, is used instead of opening the embedded one (and is not closed on stop):
	// in-process tests run components as separate graphs around one store.
	Store store.Store
	// DeliverOverNATS makes fanout and presence deliver to this process's gateway over NATS,
	// as to any other, rather than by direct calls: for tests that watch the delivery subject.
	DeliverOverNATS bool

	Gateway   gateway.Config
	API       api.Config
	Persister persister.Config
	Fanout    fanout.Config
	Presence  presence.Config
	// Push sends notifications through FCM; with no credentials it only logs them.
	Push push.Config
	// Search indexes messages; its Dir defaults to <DataDir>/search.
	Search search.Config
	// Recovery tunes the start-up check of the embedded store against the streams, the stream
	// positions it records and the backups it serves (services/recovery).
	Recovery RecoveryConfig
}

// RecoveryConfig tunes what a process holding the embedded store does for recovery.
type RecoveryConfig struct {
	// Repair lets the start-up check rebuild an empty store from the streams, or make a stream
	// that is behind the store continue after it, instead of refusing to start.
	Repair bool
	// PositionInterval is how often the store records how far it holds each stream.
	PositionInterval time.Duration
}

// DefaultConfig is `natter run` with no flags.
func DefaultConfig() Config {
	return Config{
		Targets:          AllTargets,
		DataDir:          "./data",
		NATS:             natsx.ServerConfig{Name: "natter", Host: "127.0.0.1", Port: 4222},
		Streams:          streams.DefaultOptions(),
		ApplyDefinitions: true,
		AccessTTL:        15 * time.Minute,
		StoreKind:        "pebble",
		MetricsAddr:      "127.0.0.1:9090",
		SpareProc:        true,
		Gateway:          gateway.DefaultConfig(),
		API: api.Config{
			Addr: "127.0.0.1:8080", Limits: api.DefaultLimits(),
			HashConcurrency: api.DefaultHashConcurrency(), HashWait: api.DefaultHashWait,
			EditWindow: revision.DefaultEditWindow, BarrierWindow: streams.DefaultBarrierWindow,
		},
		Persister: persister.DefaultConfig(),
		Fanout:    fanout.DefaultConfig(),
		Presence:  presence.DefaultConfig(),
		Push:      push.DefaultConfig(),
		Search:    search.DefaultConfig(),
		Recovery:  RecoveryConfig{PositionInterval: time.Second},
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Targets) == 0 {
		return errors.New("no targets")
	}
	for _, t := range c.Targets {
		if !slices.Contains(KnownTargets, t) {
			return fmt.Errorf("unknown target %q (known: %s)", t, strings.Join(KnownTargets, ", "))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls needs both a certificate file and a key file")
	}
	if c.has(TargetNATS) && c.NATSURL != "" {
		return errors.New("target nats starts an embedded node; it cannot be combined with an external --nats-url")
	}
	if c.DataDir == "" {
		return errors.New("data dir is required")
	}
	if c.AccessTTL <= 0 {
		return errors.New("access token ttl must be positive")
	}
	switch c.StoreKind {
	case "pebble":
	case "scylla":
		if err := c.Scylla.Validate(); err != nil {
			return err
		}
	case "remote":
		if c.has(TargetStore) {
			return errors.New("target store serves a local store (pebble or scylla), not a remote one")
		}
	default:
		return fmt.Errorf("store %q: want pebble, scylla or remote", c.StoreKind)
	}
	if c.Streams.Replicas < 1 {
		return errors.New("replicas must be at least 1")
	}
	if err := streams.ValidBarrierWindow(c.Streams.BarrierWindow); err != nil {
		return err
	}
	if c.Streams.FanoutPartitions < 1 {
		return errors.New("fanout partitions must be at least 1")
	}
	if c.Streams.FanoutLiveness < 50*time.Millisecond {
		return fmt.Errorf("fanout liveness %s: want at least 50ms", c.Streams.FanoutLiveness)
	}
	// The refresh intervals derived from them (Derived) must be positive.
	if c.Streams.GatewayTTL < 100*time.Millisecond || c.Streams.RouteTTL < 100*time.Millisecond {
		return fmt.Errorf("gateway ttl %s and route ttl %s: want at least 100ms", c.Streams.GatewayTTL, c.Streams.RouteTTL)
	}
	return nil
}

func (c Config) has(t string) bool { return slices.Contains(c.Targets, t) }

// SetAllowedOrigins sets the browser origins the gateway takes sockets from and the API answers
// CORS for: one policy for both front doors.
func (c *Config) SetAllowedOrigins(p origin.Policy) {
	c.Gateway.Origins, c.API.Origins = p, p
}

// usesStore reports whether a target needs the store: a search-only process does not open it.
func (c Config) usesStore() bool {
	return slices.ContainsFunc(c.Targets, func(t string) bool { return t != TargetSearch && t != TargetNATS })
}

// nodeOnly reports whether the process runs nothing but the embedded NATS node.
func (c Config) nodeOnly() bool { return len(c.Targets) == 1 && c.has(TargetNATS) }

// Running exposes what a started process bound, for printing and for tests.
type Running struct {
	Gateway    *gateway.Gateway // nil unless targeted
	API        *api.Server      // nil unless targeted
	NATSServer *server.Server   // nil with an external NATS
	Metrics    net.Addr         // nil when disabled
	Timeline   *timeline.Reader // nil where Store is
	Store      store.Store      // nil in a process that runs only search (or only the NATS node)
	NC         *nats.Conn
	TLS        *tlsx.Reloader // nil without TLS
	// Config is what the components were given: the Config passed to New, Derived, with its
	// defaults filled in.
	Config Config
}

// ReloadTLS reads the certificate and key files again: new connections to the API and the
// gateway get the new certificate, open ones keep theirs. Without TLS it does nothing.
func (r *Running) ReloadTLS() error {
	if r.TLS == nil {
		return nil
	}
	return r.TLS.Reload()
}

// NATSURL is the client URL of the embedded server, or "".
func (r *Running) NATSURL() string {
	if r.NATSServer == nil {
		return ""
	}
	return r.NATSServer.ClientURL()
}

// New builds the process. Start it with app.Start; stop it with app.Stop.
func New(cfg Config, log *zap.Logger) (*fx.App, *Running, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg = cfg.Derived()
	if cfg.NATS.Dir == "" {
		cfg.NATS.Dir = filepath.Join(cfg.DataDir, "nats")
	}
	if cfg.Search.Dir == "" {
		cfg.Search.Dir = filepath.Join(cfg.DataDir, "search")
	}
	if cfg.has(TargetFanout) && cfg.Fanout.InstanceID == "" {
		id, err := fanout.LoadOrCreateInstanceID(filepath.Join(cfg.DataDir, "fanout.id"))
		if err != nil {
			return nil, nil, err
		}
		cfg.Fanout.InstanceID = id
	}
	run := &Running{}
	if cfg.TLSCert != "" {
		certs, err := tlsx.Load(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, err
		}
		run.TLS = certs
		cfg.API.TLS, cfg.Gateway.TLS = certs.ServerConfig(), certs.ServerConfig()
	}
	run.Config = cfg
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if run.TLS != nil {
		certs := run.TLS
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "natter_tls_certificate_expiry_timestamp_seconds",
			Help: "When the TLS certificate in use (--tls-cert) expires, in Unix seconds; it follows SIGHUP reloads.",
		}, func() float64 { return float64(certs.NotAfter().Unix()) }))
	}

	opts := []fx.Option{
		// fx's events, its errors included, are debug: the error of a failed New or Start is
		// returned to the caller, which reports it once.
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.ZapLogger{Logger: log.Named("fx")}
			l.UseLogLevel(zapcore.DebugLevel)
			l.UseErrorLevel(zapcore.DebugLevel)
			return l
		}),
		fx.Supply(log, cfg.Gateway, cfg.API, cfg.Persister, cfg.Fanout, cfg.Presence, cfg.Push, cfg.Search),
		fx.Supply(fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		fx.Provide(
			func(lc fx.Lifecycle) (*server.Server, error) { return embeddedNATS(lc, cfg, log, run) },
			func(lc fx.Lifecycle, srv *server.Server) (*nats.Conn, error) {
				return connect(lc, cfg, srv, log, strings.Join(cfg.Targets, ","))
			},
			func(lc fx.Lifecycle, nc *nats.Conn) (jetstream.JetStream, error) {
				return applyDefinitions(lc, cfg, nc, log)
			},
			func(lc fx.Lifecycle, nc *nats.Conn) (store.Store, error) { return openStore(lc, cfg, nc, log) },
			func() (*auth.Tokens, error) { return tokens(cfg) },
			timeline.New,
			func(r prometheus.Registerer) *consumer.Metrics { return consumer.NewMetrics(r) },
			// The gateway of this process, if it runs one, takes fanout's and presence's
			// deliveries by direct calls.
			func() *streams.LocalGateways {
				if cfg.DeliverOverNATS {
					return nil
				}
				return streams.NewLocalGateways()
			},
			// One consent mirror for every component of the process (gateway, api, fanout,
			// presence, push), fed from CONSENT once the streams are defined.
			func(lc fx.Lifecycle, js jetstream.JetStream) *consent.Table {
				t := consent.New()
				lc.Append(fx.Hook{OnStart: func(ctx context.Context) error { return t.Follow(ctx, js, log) },
					OnStop: func(context.Context) error { t.Stop(); return nil }})
				return t
			},
		),
	}
	if cfg.MetricsAddr != "" {
		opts = append(opts, fx.Invoke(func(lc fx.Lifecycle) { serveMetrics(lc, cfg.MetricsAddr, cfg.Pprof, reg, cfg.Gatherers, log, run) }))
	}
	if cfg.SpareProc {
		opts = append(opts, fx.Invoke(func(lc fx.Lifecycle) { governProcs(lc, reg, log) }))
	}
	if cfg.nodeOnly() {
		opts = append(opts, fx.Invoke(func(*server.Server) {}))
		app := fx.New(opts...)
		return app, run, dig.RootCause(app.Err())
	}
	if cfg.has(TargetStore) {
		opts = append(opts, fx.Invoke(func(lc fx.Lifecycle, nc *nats.Conn, st store.Store) { serveStore(lc, cfg, nc, st, log) }))
	}
	if cfg.Store == nil && cfg.StoreKind == "pebble" && cfg.usesStore() {
		// Before the consumers: the check runs before they start, and the last position is
		// recorded after they drained.
		// A module, as the components are: fx runs the invokes of modules before the root's.
		opts = append(opts, fx.Module("recovery", fx.Invoke(func(lc fx.Lifecycle, nc *nats.Conn, js jetstream.JetStream, st store.Store) {
			guardStore(lc, cfg, nc, js, st, log)
		})))
	}
	// Workers first, front doors last: on stop, fx runs hooks in reverse, so sockets and HTTP
	// close before the consumers drain and the store closes.
	if cfg.has(TargetPersister) {
		opts = append(opts, ownConnection(cfg, "persister", fx.Options(persister.Module, projector.Module)))
	}
	if cfg.has(TargetFanout) {
		opts = append(opts, ownConnection(cfg, "fanout", fanout.Module))
	}
	if cfg.has(TargetPresence) {
		opts = append(opts, presence.Module)
	}
	if cfg.has(TargetPush) {
		opts = append(opts, push.Module)
	}
	if cfg.has(TargetSearch) {
		opts = append(opts, ownConnection(cfg, "search", search.Module))
	}
	if cfg.has(TargetGateway) {
		opts = append(opts, ownConnection(cfg, "gateway", gateway.Module), fx.Populate(&run.Gateway))
	}
	if cfg.has(TargetAPI) {
		opts = append(opts, api.Module, fx.Populate(&run.API))
	}
	opts = append(opts, fx.Populate(&run.NC))
	if cfg.usesStore() {
		opts = append(opts, fx.Populate(&run.Timeline, &run.Store))
	}
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		// The constructor's own error, without dig's "could not build arguments for ..." chain.
		return nil, nil, dig.RootCause(err)
	}
	return app, run, nil
}

func embeddedNATS(lc fx.Lifecycle, cfg Config, log *zap.Logger, run *Running) (*server.Server, error) {
	if cfg.NATSURL != "" {
		return nil, nil
	}
	srv, err := natsx.StartServer(cfg.NATS, log)
	if err != nil {
		return nil, err
	}
	run.NATSServer = srv
	lc.Append(fx.StopHook(func() { srv.Shutdown(); srv.WaitForShutdown() }))
	return srv, nil
}

func connect(lc fx.Lifecycle, cfg Config, srv *server.Server, log *zap.Logger, name string) (*nats.Conn, error) {
	var opts []nats.Option
	if srv == nil {
		var err error
		if opts, err = cfg.NATSClient.Options(); err != nil {
			return nil, err
		}
	}
	nc, err := natsx.Connect(cfg.NATSURL, "natter:"+name, srv, log, opts...)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(func() error {
		if err := nc.Drain(); err != nil {
			nc.Close()
			return err
		}
		for !nc.IsClosed() {
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}))
	return nc, nil
}

// ownConnection gives module a NATS connection of its own. The gateway publishes flat out; on a
// shared connection the consumers' pulls, barriers and acks queued behind its publishes (a 40 ms
// round trip under load in natter bench, which capped fanout at its chunk size per round trip).
func ownConnection(cfg Config, name string, module fx.Option) fx.Option {
	return fx.Module(name+"-connection",
		fx.Decorate(func(lc fx.Lifecycle, srv *server.Server, log *zap.Logger, _ *nats.Conn, _ jetstream.JetStream) (*nats.Conn, jetstream.JetStream, error) {
			nc, err := connect(lc, cfg, srv, log, name)
			if err != nil {
				return nil, nil, err
			}
			js, err := jetstream.New(nc)
			if err != nil {
				return nil, nil, fmt.Errorf("jetstream: %w", err)
			}
			return nc, js, nil
		}),
		module)
}

func applyDefinitions(lc fx.Lifecycle, cfg Config, nc *nats.Conn, log *zap.Logger) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if !cfg.ApplyDefinitions {
		return js, nil
	}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		// A cluster that is still forming (no JetStream meta leader yet, or too few nodes for
		// the replicas) answers with errors for a while: retry until start-up times out.
		for attempt := 1; ; attempt++ {
			err := natsx.Apply(ctx, js, streams.Define(cfg.Streams)) // each request bounded on its own
			if err == nil {
				return nil
			}
			if attempt%10 == 1 {
				log.Warn("stream definitions not applied yet; retrying", zap.Int("attempt", attempt), zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(500 * time.Millisecond):
			}
		}
	}))
	return js, nil
}

func openStore(lc fx.Lifecycle, cfg Config, nc *nats.Conn, log *zap.Logger) (store.Store, error) {
	if cfg.Store != nil {
		return cfg.Store, nil
	}
	var st store.Store
	var err error
	switch cfg.StoreKind {
	case "scylla":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err = scylla.Open(ctx, cfg.Scylla, log.Named("scylla"))
	case "remote":
		st, err = remote.Dial(nc, cfg.Remote)
	default:
		st, err = pebble.Open(filepath.Join(cfg.DataDir, "store"), pebble.Options{Logger: log.Named("pebble")})
	}
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(st.Close))
	return st, nil
}

// serveStore answers store requests over NATS (TargetStore) from start until stop, which drains
// the requests under way before the store closes.
func serveStore(lc fx.Lifecycle, cfg Config, nc *nats.Conn, st store.Store, log *zap.Logger) {
	var srv *remote.Server
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			var err error
			srv, err = remote.Serve(nc, st, cfg.StoreServer, log.Named("store-server"))
			return err
		},
		OnStop: func(ctx context.Context) error { return srv.Stop(ctx) },
	})
}

// guardStore runs the start-up check of the embedded store against the streams, then records
// the store's stream positions and serves backups until stop.
func guardStore(lc fx.Lifecycle, cfg Config, nc *nats.Conn, js jetstream.JetStream, st store.Store, log *zap.Logger) {
	rst, ok := st.(interface {
		recovery.Store
		store.Checkpointer
	})
	if !ok {
		return
	}
	log = log.Named("recovery")
	var rec *recovery.Recorder
	var backups *recovery.BackupServer
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			ps := recovery.Projections()
			if err := recovery.Check(ctx, js, nc, rst, ps, cfg.Recovery.Repair, log); err != nil {
				return err
			}
			var err error
			if backups, err = recovery.ServeBackups(nc, js, rst, ps, filepath.Join(cfg.DataDir, "checkpoints"), log); err != nil {
				return err
			}
			rec = recovery.StartRecorder(js, rst, ps, cfg.Recovery.PositionInterval, log)
			return nil
		},
		OnStop: func(ctx context.Context) error {
			return errors.Join(backups.Stop(ctx), rec.Stop(ctx))
		},
	})
}

func tokens(cfg Config) (*auth.Tokens, error) {
	secret := cfg.JWTSecret
	if len(secret) == 0 {
		var err error
		if secret, err = auth.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "jwt.secret")); err != nil {
			return nil, err
		}
	}
	return auth.NewTokens(secret, cfg.AccessTTL)
}

func serveMetrics(lc fx.Lifecycle, addr string, profiles bool, reg *prometheus.Registry, more []prometheus.Gatherer, log *zap.Logger, run *Running) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(append(prometheus.Gatherers{reg}, more...), promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	if profiles {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also the named profiles: heap, goroutine, ...
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("metrics: %w", err) // net.Listen names the address
			}
			run.Metrics = ln.Addr()
			go func() {
				defer close(done)
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("metrics serve", zap.Error(err))
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			<-done
			return err
		},
	})
}

// governProcs runs the spare P's governor (pkg/spareproc) for the process's life.
func governProcs(lc fx.Lifecycle, reg prometheus.Registerer, log *zap.Logger) {
	g := spareproc.New(log.Named("spareproc"))
	if g == nil {
		return
	}
	given := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "natter_spare_proc",
		Help: "1 while Go may run one more thread of Go code than the process has CPUs (--spare-proc), 0 otherwise.",
	})
	reg.MustRegister(given)
	g.Changed = func(on bool) {
		if on {
			given.Set(1)
		} else {
			given.Set(0)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				g.Run(ctx, spareproc.Interval)
			}()
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			<-done
			return nil
		},
	})
}
