package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/multierr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/origin"
	"github.com/natter-chat/natter/services/app"
)

// startTimeout bounds natter run's start-up.
const startTimeout = 30 * time.Second

// runCmd is natter run. An error is the one cause of a failed start, ready to be printed as one
// line: app.New and the start unwrap fx's dependency-injection errors, and fx logs its own events
// at debug level only.
func runCmd(args []string) error {
	cfg, opts, err := parseRun("run", args)
	if err != nil {
		return err
	}
	log, err := newLogger(*opts.log, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if os.Getenv(searchChildEnv) != "" {
		log = log.With(zap.String("process", "search"))
	}
	var muted atomic.Bool
	log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return muteCore{c, &muted} }))

	var search *searchProcess
	if apart, why := searchApart(cfg, opts.searchProcess); apart {
		if search, err = newSearchProcess(); err != nil {
			return err
		}
		defer func() { _ = search.stop() }() // a failed start's; after a stop, a no-op
		cfg.Targets = withoutSearch(cfg.Targets)
		cfg.Gatherers = append(cfg.Gatherers, search.gatherer())
	} else if why != "" {
		log.Info("search runs in this process", zap.String("why", why))
	}

	// Signals are caught from here on (by default SIGINT and SIGTERM end a process at once, with
	// nothing flushed or stopped): one during the start ends the start, one after it the clean
	// stop below. natter run's own search process is stopped with SIGTERM too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)

	fxApp, run, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	endWatch := watchStart(sig, cancel)
	if err := fxApp.Start(startCtx); err != nil {
		interrupted := endWatch()
		// A failed start stops what had started (fx's rollback); its errors follow the cause.
		errs := multierr.Errors(err)
		for _, rerr := range errs[1:] {
			log.Warn("stop after a failed start", zap.Error(rerr))
		}
		// The error is the last line printed: NATS callbacks of the closed connections may still
		// log on their own goroutines.
		muted.Store(true)
		if interrupted != nil {
			return fmt.Errorf("start interrupted (%s): %w", interrupted, errs[0])
		}
		if startCtx.Err() != nil {
			return fmt.Errorf("start did not finish within %s: %w", startTimeout, errs[0])
		}
		return errs[0] // the component's own error, e.g. "api: listen ...: address already in use"
	}
	if search != nil {
		natsURL := ""
		if cfg.NATSURL == "" {
			natsURL = run.NATSURL()
		}
		ready, err := search.start(startCtx, args, natsURL, log)
		if err != nil {
			endWatch()
			muted.Store(true)
			if serr := fxApp.Stop(context.Background()); serr != nil {
				log.Warn("stop after a failed start", zap.Error(serr))
			}
			return err
		}
		starting := ""
		if !ready {
			starting = ", starting"
		}
		cfg.Targets = append(cfg.Targets, fmt.Sprintf("search (process %d, nice %d%s)", search.child.PID(), searchNice, starting))
	}
	// A signal that came during the start (while natter waited for its search process) stops
	// natter before it announces where to connect.
	s := endWatch()
	if s == nil {
		addrs := addresses(run)
		printBanner(addrs, cfg)
		if opts.addrFile != "" {
			if err := writeJSON(opts.addrFile, addrs); err != nil {
				log.Error("write addr file", zap.Error(err))
			}
		}
		if run.TLS != nil {
			log.Info("tls certificate", zap.String("subject", run.TLS.Subject()), zap.Time("not_after", run.TLS.NotAfter()))
		}
		s = <-sig
	}
	for ; s == syscall.SIGHUP; s = <-sig {
		// SIGHUP reloads the TLS certificate; open connections keep theirs.
		if err := run.ReloadTLS(); err != nil {
			log.Error("tls certificate not reloaded; the previous one stays in use", zap.Error(err))
		} else if run.TLS != nil {
			log.Info("tls certificate reloaded", zap.String("subject", run.TLS.Subject()), zap.Time("not_after", run.TLS.NotAfter()))
		}
	}
	log.Info("shutting down", zap.String("signal", s.String()))
	if search != nil { // before NATS, which it reads from, stops
		if err := search.stop(); err != nil {
			log.Warn("search process killed: it resumes from its consumer's position at the next start", zap.Error(err))
		}
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	if err := fxApp.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

// watchStart cancels the start when SIGINT or SIGTERM comes during it (a SIGHUP, a reload, is
// dropped then). end stops watching and returns the signal that came, nil if none; it may be
// called more than once.
func watchStart(sig <-chan os.Signal, cancel context.CancelFunc) (end func() os.Signal) {
	stop, got := make(chan struct{}), make(chan os.Signal, 1)
	go func() {
		defer close(got)
		for {
			select {
			case s := <-sig:
				if s == syscall.SIGHUP {
					continue
				}
				got <- s
				cancel()
				return
			case <-stop:
				return
			}
		}
	}()
	var once sync.Once
	var s os.Signal
	return func() os.Signal {
		once.Do(func() { close(stop); s = <-got })
		return s
	}
}

// runOptions are the flags of natter run that are not part of app.Config.
type runOptions struct {
	log           *logOptions
	addrFile      string
	searchProcess bool
}

// parseRun parses the flags of natter run (name is the command, for messages): natter init
// takes the same ones, so that it applies the definitions that natter run would.
func parseRun(name string, args []string) (app.Config, runOptions, error) {
	cfg := app.DefaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	targets := fs.String("target", strings.Join(app.AllTargets, ","), "components to run: any of "+strings.Join(app.KnownTargets, ",")+
		" (nats: only the embedded NATS node; store: serve this process's store over NATS to --store remote processes)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the embedded NATS server, the embedded store and the token secret")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "external NATS server or cluster (nats://host:port,...); empty starts an embedded server")
	fs.StringVar(&cfg.NATS.Host, "nats-host", cfg.NATS.Host, "embedded NATS client listen host")
	fs.IntVar(&cfg.NATS.Port, "nats-port", cfg.NATS.Port, "embedded NATS client port (-1 picks a free one)")
	fs.BoolVar(&cfg.NATS.SyncAlways, "nats-sync-always", false, "fsync every JetStream write (survives power loss; slower)")
	fs.StringVar(&cfg.NATS.Name, "nats-name", cfg.NATS.Name, "embedded NATS server name; unique within a cluster")
	fs.StringVar(&cfg.NATS.ClusterName, "nats-cluster", "", "join the embedded NATS node to this JetStream cluster (with --nats-routes)")
	fs.StringVar(&cfg.NATS.ClusterHost, "nats-cluster-host", "", "embedded NATS cluster listen host (default --nats-host)")
	fs.IntVar(&cfg.NATS.ClusterPort, "nats-cluster-port", 6222, "embedded NATS cluster listen port")
	natsRoutes := fs.String("nats-routes", "", "the cluster's nodes: nats-route://host:port,... (this node's own route may be listed)")
	fs.StringVar(&cfg.API.Addr, "api-addr", cfg.API.Addr, "HTTP API listen address (port 0 picks a free one)")
	fs.StringVar(&cfg.Gateway.Addr, "ws-addr", cfg.Gateway.Addr, "WebSocket gateway listen address (port 0 picks a free one)")
	fs.StringVar(&cfg.Gateway.PublicURL, "ws-public-url", "", "WebSocket URL announced to clients (default ws://<ws-addr>/v1/ws)")
	fs.StringVar(&cfg.Gateway.ID, "gateway-id", "", "gateway id (default random)")
	fs.DurationVar(&cfg.Gateway.WriteInterval, "write-interval", cfg.Gateway.WriteInterval, "least time between two writes to one socket while frames keep coming to it: sooner ones wait and go out together (0..1s; 0: write each batch at once)")
	fs.Uint64Var(&cfg.Gateway.MaxDeliveryLag, "max-delivery-lag", cfg.Gateway.MaxDeliveryLag, "a gateway holds new sends (each up to 2s) while the fanout partition delivering to it trails its latest send by more events than this (0: never)")
	allowedOrigins := fs.String("allowed-origins", origin.Any, "browser origins whose pages may open WebSockets and call the API (CORS): "+
		"scheme://host[:port],... or * for any; requests without an Origin header (apps, servers) are always allowed")
	fs.DurationVar(&cfg.Gateway.HeartbeatInterval, "heartbeat", cfg.Gateway.HeartbeatInterval, "WebSocket ping interval")
	fs.DurationVar(&cfg.Gateway.EditWindow, "edit-window", cfg.Gateway.EditWindow, "how long after sending a message its sender may edit it (0: no limit); deletes have no limit")
	fs.DurationVar(&cfg.Gateway.HeartbeatTimeout, "heartbeat-timeout", cfg.Gateway.HeartbeatTimeout, "close a socket whose pong takes longer")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "Prometheus /metrics listen address (empty disables)")
	fs.BoolVar(&cfg.SpareProc, "spare-proc", cfg.SpareProc, "while the machine has idle CPU, let Go run one more thread of Go code than this process has CPUs: messages wait less behind bursts of CPU-bound work such as search's index writes; taken back when the CPUs are busy (ignored when GOMAXPROCS is set)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "also serve Go's CPU, heap and goroutine profiles at /debug/pprof/ on --metrics-addr (keep that address private)")
	fs.DurationVar(&cfg.AccessTTL, "access-ttl", cfg.AccessTTL, "lifetime of the access tokens the API issues; clients renew them with their refresh token")
	fs.DurationVar(&cfg.AccessTTL, "token-ttl", cfg.AccessTTL, "the old name of --access-ttl")
	fs.DurationVar(&cfg.API.RefreshIdle, "refresh-ttl", auth.DefaultRefreshIdle, "a login session not refreshed for this long ends (its refresh token is refused)")
	fs.IntVar(&cfg.Streams.Replicas, "replicas", cfg.Streams.Replicas, "JetStream replicas for streams and buckets")
	fs.DurationVar(&cfg.Streams.DuplicateWindow, "dedupe-window", cfg.Streams.DuplicateWindow, "JetStream duplicate window for client sends")
	fs.DurationVar(&cfg.Streams.AckWait, "ack-wait", cfg.Streams.AckWait, "redelivery timeout of the persister, presence, push and search consumers: what a crashed instance held comes back after it (every process must agree)")
	fs.IntVar(&cfg.Search.Chunk, "search-batch", cfg.Search.Chunk, "most messages indexed in one search index batch (1..10000): larger batches cost less CPU per message")
	fs.DurationVar(&cfg.Search.Linger, "search-linger", cfg.Search.Linger, "how long a search batch waits for more messages before it is indexed: about how long a message takes to become searchable")
	fs.DurationVar(&cfg.Search.Gather, "search-gather", cfg.Search.Gather, "once search has caught up, how long events gather on the server before it takes them in one delivery (0..1s): fewer, larger deliveries, at the price of this much more time before a message is searchable")
	fs.IntVar(&cfg.Persister.Workers, "persister-workers", cfg.Persister.Workers, "parallel store writers of a persister that shares its consumer (--store scylla or remote, or with --target store); with the embedded store the one persister writes in stream order")
	fs.DurationVar(&cfg.Persister.Gather, "persister-gather", cfg.Persister.Gather, "once the persister has caught up, how long events gather on the server before it takes them in one delivery (0..1s): fewer, larger deliveries, chunks and acks, at the price of this much more lag before history is in the store (reads take the rest from the stream)")
	fs.DurationVar(&cfg.Persister.Linger, "persister-linger", cfg.Persister.Linger, "how long a persister chunk waits after its first event for more (0..1s): one wait for the disk then covers more events at low rates")
	fs.StringVar(&cfg.StoreKind, "store", cfg.StoreKind, "history store: pebble (embedded, under --data-dir), scylla, or remote (served over NATS by a process with --target store)")
	fs.IntVar(&cfg.Streams.FanoutPartitions, "fanout-partitions", cfg.Streams.FanoutPartitions, "split fanout's work by gateway into this many partitions, shared among fanout instances (every process must agree)")
	fs.StringVar(&cfg.Fanout.InstanceID, "fanout-id", "", "this fanout instance's id among the live ones (default: kept in <data-dir>/fanout.id, so a restart takes its partitions back at once)")
	fs.DurationVar(&cfg.Streams.BarrierWindow, "barrier-window", cfg.Streams.BarrierWindow, "how long one of fanout's route and consent barriers serves, and how long gateways and the API wait after a route or consent write before relying on it (0..1s; every process must agree)")
	fs.DurationVar(&cfg.Streams.FanoutLiveness, "fanout-liveness", cfg.Streams.FanoutLiveness, "a fanout instance silent this long counts as gone and the others take its partitions over (every process should agree)")
	scyllaFlags(fs, &cfg.Scylla)
	pushFlags(fs, &cfg.Push)
	applyLimits := limitFlags(fs, &cfg.API, &cfg.Gateway)
	fs.BoolVar(&cfg.Fanout.PushOnlineLedger, "push-online-ledger", cfg.Fanout.PushOnlineLedger, "record \"skipped: online\" in the push ledger for every connected device (one KV write per device and message)")
	fs.DurationVar(&cfg.Streams.GatewayTTL, "gateway-ttl", cfg.Streams.GatewayTTL, "how long a silent gateway stays discoverable; its users go offline within it (every process must agree)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the API over HTTPS and the gateway over wss:// with this certificate (PEM, chain after the leaf); SIGHUP reloads it")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "key file (PEM) of --tls-cert")
	fs.StringVar(&cfg.NATS.TLSCert, "nats-tls-cert", "", "embedded NATS: accept clients over TLS only, with this certificate (PEM)")
	fs.StringVar(&cfg.NATS.TLSKey, "nats-tls-key", "", "embedded NATS: key file (PEM) of --nats-tls-cert")
	fs.StringVar(&cfg.NATS.TLSCA, "nats-tls-ca", "", "embedded NATS: require client certificates signed by a CA in this PEM file")
	completeNATS := natsClientFlags(fs, &cfg.NATSClient)
	fs.BoolVar(&cfg.ApplyDefinitions, "apply-definitions", cfg.ApplyDefinitions, "create or update natter's streams, buckets and consumers at start; false with least-privilege NATS users, after natter init")
	fs.BoolVar(&cfg.Recovery.Repair, "repair", false, "when the embedded store is empty and the streams still hold every event, rebuild it from them; when a stream is behind the store, continue it after the store (see docs/operations.md)")
	retentionFlags(fs, &cfg.Streams)
	var opts runOptions
	opts.log = logFlags(fs)
	fs.StringVar(&opts.addrFile, "addr-file", "", "write the bound addresses as JSON to this file once ready")
	fs.BoolVar(&opts.searchProcess, "search-process", true, "when search runs here beside other components, index it in a process of its own at the lowest CPU priority (nice 19), started and stopped with this one, its metrics served on this one's /metrics: the delivery path keeps the CPU (Linux; elsewhere search runs in this process)")
	if err := envFlags(fs); err != nil {
		return cfg, opts, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	cfg.Targets = strings.Split(*targets, ",")
	if err := applyLimits(); err != nil {
		return cfg, opts, err
	}
	completeNATS()
	cfg.Scylla.Hosts = splitList(*scyllaHosts)
	cfg.NATS.ClusterRoutes = splitList(*natsRoutes)
	origins, err := origin.Parse(*allowedOrigins)
	if err != nil {
		return cfg, opts, fmt.Errorf("--allowed-origins: %w", err)
	}
	cfg.SetAllowedOrigins(origins)
	if secret := os.Getenv("NATTER_JWT_SECRET"); secret != "" {
		if len(secret) < auth.MinSecretBytes {
			return cfg, opts, fmt.Errorf("NATTER_JWT_SECRET has %d bytes, want at least %d", len(secret), auth.MinSecretBytes)
		}
		cfg.JWTSecret = []byte(secret)
	}
	return cfg, opts, nil
}

// Addresses is what a running natter tells people and tests to connect to.
type Addresses struct {
	API       string `json:"api,omitempty"`
	WebSocket string `json:"websocket,omitempty"`
	NATS      string `json:"nats,omitempty"`
	Metrics   string `json:"metrics,omitempty"`
}

func addresses(run *app.Running) Addresses {
	var a Addresses
	if run.API != nil {
		a.API = run.API.URL()
	}
	if run.Gateway != nil {
		a.WebSocket = run.Gateway.URL()
	}
	a.NATS = run.NATSURL()
	if run.Metrics != nil {
		a.Metrics = "http://" + run.Metrics.String() + "/metrics"
	}
	return a
}

func printBanner(a Addresses, cfg app.Config) {
	fmt.Printf("\nnatter %s is running (%s)\n", version, strings.Join(cfg.Targets, ", "))
	web := ""
	if a.API != "" {
		web = a.API + "/" // the web client (services/web), served by the API
	}
	for _, row := range [][2]string{{"web", web}, {"HTTP API", a.API}, {"WebSocket", a.WebSocket}, {"NATS", a.NATS}, {"metrics", a.Metrics}} {
		if row[1] != "" {
			fmt.Printf("  %-10s %s\n", row[0], row[1])
		}
	}
	if cfg.NATSURL == "" {
		fmt.Printf("  %-10s %s\n", "data", cfg.DataDir)
	}
	if a.API != "" {
		fmt.Printf("Try: curl -s %s/healthz   ·   ", a.API)
	}
	fmt.Print("Ctrl-C stops it cleanly\n\n")
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
