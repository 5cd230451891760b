// Package natsx starts an embedded nats-server, connects to NATS, and applies natter's stream,
// bucket and consumer definitions idempotently.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/tlsx"
	"github.com/natter-chat/natter/streams"
)

// ServerConfig configures an embedded nats-server with JetStream.
type ServerConfig struct {
	Name string // server name; unique within a cluster
	Dir  string // JetStream storage directory
	Host string // client listen host
	Port int    // client port; -1 picks a free one
	// SyncAlways fsyncs every write (survives power loss, ~20x slower publishes); otherwise
	// nats-server syncs every SyncInterval (an acknowledged write survives kill -9 either way).
	SyncAlways   bool
	SyncInterval time.Duration // 0 = nats-server default (2 minutes)

	// Cluster: a node joins a JetStream cluster when ClusterName is set.
	ClusterName   string
	ClusterHost   string
	ClusterPort   int      // -1 picks a free one
	ClusterRoutes []string // nats-route://host:port of the other nodes

	// TLS: with TLSCert and TLSKey set, clients must connect over TLS; with TLSCA set too, they
	// must also present a certificate signed by one of its CAs. Connections from inside the
	// process (in-process, no socket) need no TLS.
	TLSCert, TLSKey, TLSCA string
}

// Validate checks the configuration.
func (c ServerConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("nats: storage dir is required")
	}
	if c.ClusterName != "" && c.Name == "" {
		return errors.New("nats: a clustered node needs a server name")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") || (c.TLSCA != "" && c.TLSCert == "") {
		return errors.New("nats: server TLS needs a certificate and a key file (and a CA file only with them)")
	}
	return nil
}

// StartServer starts an embedded nats-server and waits until it accepts connections.
// The caller owns it: Shutdown and WaitForShutdown on stop.
func StartServer(cfg ServerConfig, log *zap.Logger) (*server.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         cfg.Name,
		Host:               cfg.Host,
		Port:               cfg.Port,
		JetStream:          true,
		StoreDir:           cfg.Dir,
		NoSigs:             true,
		SyncAlways:         cfg.SyncAlways,
		SyncInterval:       cfg.SyncInterval,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if cfg.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSCA != ""})
		if err != nil {
			return nil, fmt.Errorf("nats: server tls: %w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = true, tc, cfg.TLSCA != "", 2
	}
	if cfg.ClusterName != "" {
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: cfg.ClusterHost, Port: cfg.ClusterPort}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = opts.Host
		}
		for _, r := range cfg.ClusterRoutes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: new server: %w", err)
	}
	sl := &serverLog{s: log.Named("nats-server").Sugar(), starting: true}
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()
	err = waitReady(srv, sl, 10*time.Second)
	sl.started()
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return srv, nil
}

// waitReady waits until srv accepts connections. A fatal error of its start (a port in use, a
// JetStream that cannot start) is returned at once rather than after timeout.
func waitReady(srv *server.Server, sl *serverLog, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ready := srv.ReadyForConnections(50 * time.Millisecond)
		if err := sl.startErr(); err != nil {
			return err // nats-server gave up its start, even if a listener came up
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats: embedded server not ready after %s", timeout)
		}
	}
}

// ClientConfig is how a process authenticates to NATS and protects its connections.
type ClientConfig struct {
	// CAFile, when set, is the CA the server's certificate must chain to, and makes the
	// connection TLS; CertFile and KeyFile are a client certificate to present.
	CAFile, CertFile, KeyFile string
	// User and Password, or CredsFile (a .creds file: user JWT and nkey seed), or NkeyFile (an
	// nkey seed file) authenticate the connection; all empty: none.
	User, Password string
	CredsFile      string
	NkeyFile       string
	// InboxPrefix replaces _INBOX for the replies this process receives, so that NATS users
	// may be given subscribe permission on their own replies only (see Permissions).
	InboxPrefix string
}

// UserInbox is the inbox prefix of a NATS user's replies: _INBOX.<user>.
func UserInbox(user string) string { return "_INBOX." + user }

// Options are the nats.Options of c.
func (c ClientConfig) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		tc, err := tlsx.ClientConfig(c.CAFile, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	set := 0
	for _, s := range []string{c.User, c.CredsFile, c.NkeyFile} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return nil, errors.New("nats: give one of a user, a creds file or an nkey file")
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Password != "":
		return nil, errors.New("nats: a password needs a user")
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NkeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nkey file: %w", err)
		}
		opts = append(opts, o)
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	return opts, nil
}

// Connect opens a client connection that reconnects forever and logs its state changes.
// With srv non-nil it connects to that embedded server over a loopback socket, or in-process
// (without a socket, and without TLS) when the server accepts only TLS clients.
//
// A socket, not the in-process connection, because the latter is a net.Pipe: every write is
// a hand-over between goroutines that returns only once the other side has read it, and the
// server writes a client's pending buffers one such write each where a socket takes them in one
// writev (buffering the client's end did not help). Over loopback TCP natter's 1:1 path took
// 28 % less CPU per message and delivered 55 % more (docs/performance.md, fifteenth round).
func Connect(natsURL, name string, srv *server.Server, log *zap.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil { // an intentional close
				return
			}
			log.Warn("nats disconnected", zap.String("conn", name), zap.Error(err))
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", zap.String("conn", name), zap.String("url", c.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats async error", zap.String("conn", name), zap.String("subject", subj), zap.Error(err))
		}),
	}
	if srv != nil {
		if u, ok := loopbackURL(srv); ok {
			natsURL = u
		} else {
			opts = append(opts, nats.InProcessServer(srv))
			// In-process connections need no TLS, even from a server that requires it of others.
			natsURL = strings.Replace(srv.ClientURL(), "tls://", "nats://", 1)
		}
	}
	nc, err := nats.Connect(natsURL, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", natsURL, err)
	}
	return nc, nil
}

// applyRequestTimeout bounds one JetStream API request of Apply: a cluster still electing its
// meta leader leaves requests unanswered, and one of them must not use up the caller's whole
// deadline. A slow but answering server gets this much per request, not for all of them.
const applyRequestTimeout = 5 * time.Second

// Apply creates or updates every stream, bucket and durable consumer in defs. It is idempotent:
// running it at every start-up of every component is the intended use.
func Apply(ctx context.Context, js jetstream.JetStream, defs streams.Definitions) error {
	request := func(do func(ctx context.Context) error) error {
		rctx, cancel := context.WithTimeout(ctx, applyRequestTimeout)
		defer cancel()
		return do(rctx)
	}
	for _, sc := range defs.Streams {
		if err := request(func(ctx context.Context) error { _, err := js.CreateOrUpdateStream(ctx, sc); return err }); err != nil {
			return fmt.Errorf("apply stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range defs.Buckets {
		if err := request(func(ctx context.Context) error { _, err := js.CreateOrUpdateKeyValue(ctx, kc); return err }); err != nil {
			return fmt.Errorf("apply bucket %s: %w", kc.Bucket, err)
		}
	}
	for stream, ccs := range defs.Consumers {
		for _, cc := range ccs {
			keep := defs.SetByPuller(stream, cc.Durable)
			if err := request(func(ctx context.Context) error { return applyConsumer(ctx, js, stream, cc, keep) }); err != nil {
				return fmt.Errorf("apply consumer %s/%s: %w", stream, cc.Durable, err)
			}
		}
	}
	return nil
}

// applyConsumer creates the durable consumer cc on stream, or updates it. Where a consumer
// starts is decided when it is made: an existing one keeps its deliver policy and start. An
// existing consumer whose ack policy differs from cc's (an earlier version's: JetStream cannot
// change it in place) is made again (RemakeConsumer), unless keepAckPolicy: its puller sets
// that policy, and it is left as it is.
func applyConsumer(ctx context.Context, js jetstream.JetStream, stream string, cc jetstream.ConsumerConfig, keepAckPolicy bool) error {
	cons, err := js.Consumer(ctx, stream, cc.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		_, err = js.CreateOrUpdateConsumer(ctx, stream, cc)
		return err
	}
	if err != nil {
		return err
	}
	info := cons.CachedInfo()
	if keepAckPolicy {
		cc.AckPolicy = info.Config.AckPolicy
	}
	if info.Config.AckPolicy != cc.AckPolicy {
		return RemakeConsumer(ctx, js, stream, info, cc)
	}
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartSeq, info.Config.OptStartTime
	_, err = js.CreateOrUpdateConsumer(ctx, stream, cc)
	return err
}

// RemakeConsumer deletes the durable consumer of info and makes it again as cc (with another
// ack policy: JetStream cannot change one in place), starting just after the old one's ack
// floor, so that what it had acknowledged is not delivered again and nothing after that is
// skipped. What the old one had delivered and not acknowledged is delivered again. Its pullers
// must be stopped: their pulls fail while the consumer is gone.
func RemakeConsumer(ctx context.Context, js jetstream.JetStream, stream string, info *jetstream.ConsumerInfo, cc jetstream.ConsumerConfig) error {
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartSeq, info.Config.OptStartTime
	if floor := info.AckFloor.Stream; floor > 0 {
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = jetstream.DeliverByStartSequencePolicy, floor+1, nil
	}
	if err := js.DeleteConsumer(ctx, stream, cc.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("remake %s with ack policy %s: %w", cc.Durable, cc.AckPolicy, err)
	}
	if _, err := js.CreateConsumer(ctx, stream, cc); err != nil {
		return fmt.Errorf("remake %s with ack policy %s: %w", cc.Durable, cc.AckPolicy, err)
	}
	return nil
}

// serverLog is the embedded server's logger. While the server starts, its first fatal error is
// kept for StartServer to return, not logged; after that fatal errors are logged as errors.
type serverLog struct {
	s        *zap.SugaredLogger
	mu       sync.Mutex
	starting bool
	fatal    error
}

func (l *serverLog) Noticef(f string, a ...any) { l.s.Debugf(f, a...) }
func (l *serverLog) Warnf(f string, a ...any)   { l.s.Warnf(f, a...) }
func (l *serverLog) Errorf(f string, a ...any)  { l.s.Errorf(f, a...) }
func (l *serverLog) Debugf(f string, a ...any)  { l.s.Debugf(f, a...) }
func (l *serverLog) Tracef(f string, a ...any)  {}

func (l *serverLog) Fatalf(f string, a ...any) {
	l.mu.Lock()
	if l.starting {
		if l.fatal == nil {
			l.fatal = fatalError(f, a)
		}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.s.Errorf(f, a...)
}

func (l *serverLog) startErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *serverLog) started() {
	l.mu.Lock()
	l.starting = false
	l.mu.Unlock()
}

// fatalError is a fatal message of the starting server as an error: a listen failure is the net
// error it carries ("listen tcp 127.0.0.1:4222: bind: address already in use"), anything else
// the message.
func fatalError(f string, a []any) error {
	for _, arg := range a {
		if oe, ok := arg.(*net.OpError); ok {
			return fmt.Errorf("nats: %w", oe)
		}
	}
	return fmt.Errorf("nats: %s", fmt.Sprintf(f, a...))
}

// IsWrongLastSequence reports whether a publish or KV write lost a compare-and-set: another
// writer changed the subject (or key) since the expected revision.
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// loopbackURL is the address at which this process reaches srv over a socket: its client
// listener, with an unspecified host (all interfaces) replaced by loopback. ok is false when
// srv listens for TLS clients only, or does not listen.
func loopbackURL(srv *server.Server) (string, bool) {
	addr, isTCP := srv.Addr().(*net.TCPAddr)
	if !isTCP || strings.HasPrefix(srv.ClientURL(), "tls://") {
		return "", false
	}
	ip := addr.IP
	switch {
	case ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port)), true
}
