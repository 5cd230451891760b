// Package push is the durable consumer of the PUSH work queue: for each request (one message, one
// user with no connected device) it notifies every device of the user that has a push token,
// through FCM (github.com/appleboy/go-fcm, the HTTP v1 API) or, with no credentials configured,
// through a provider that only logs what it would send.
//
// Nothing is sent for a conversation the user muted, or for a message the user has read on
// another device by the time the push would go. Throttling (429) and FCM outages (5xx, timeouts,
// network errors) are retried by JetStream redelivery after the Retry-After FCM asked for (or a
// backoff), at most Config.MaxAttempts times; then the request goes, with its reason, to the
// PUSH_DEAD stream. Tokens FCM calls unregistered or invalid are removed. Every outcome, per
// message and device, goes to the push ledger (see Ledger and `natter push why`).
//
// Handling is idempotent: a device whose ledger entry for the message is final is not sent to
// again, so redeliveries and replays do not push twice.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/streams"
)

// Config configures push.
type Config struct {
	// CredentialsFile is a Firebase service-account JSON file (--fcm-credentials). With neither
	// it nor TokenSource, push logs what it would send instead of sending it.
	CredentialsFile string
	// ProjectID is the Firebase project (--fcm-project); with a credentials file and no project,
	// the file's project_id is used.
	ProjectID string
	// Endpoint replaces FCM's API base URL (https://fcm.googleapis.com/v1); tests point it at a
	// local server that speaks the HTTP v1 API.
	Endpoint string
	// TokenSource, when set, authenticates FCM requests instead of the credentials file (tests,
	// or credentials obtained elsewhere); ProjectID is then required.
	TokenSource oauth2.TokenSource
	// Transport carries FCM requests; nil is http.DefaultTransport.
	Transport http.RoundTripper

	// Workers send in parallel (push has no order to keep).
	Workers int
	// MaxAttempts bounds the deliveries of one request that fail transiently; the last one sends
	// the request to PUSH_DEAD. It must stay below the consumer's MaxDeliver.
	MaxAttempts int
	// MinRetry and MaxRetry bound the delay before a retry: Retry-After when FCM gives one, else
	// MinRetry doubled per attempt.
	MinRetry time.Duration
	MaxRetry time.Duration
	// SendTimeout bounds one FCM request.
	SendTimeout time.Duration
}

// DefaultConfig is the log provider with production retry settings.
func DefaultConfig() Config {
	return Config{Workers: 8, MaxAttempts: 8, MinRetry: time.Second, MaxRetry: 5 * time.Minute, SendTimeout: 10 * time.Second}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Workers < 1 || c.Workers > 256:
		return fmt.Errorf("push: workers %d not in 1..256", c.Workers)
	case c.MaxAttempts < 1:
		return fmt.Errorf("push: max attempts %d must be at least 1", c.MaxAttempts)
	case c.MinRetry <= 0 || c.MaxRetry < c.MinRetry:
		return fmt.Errorf("push: retry delays %s..%s: need 0 < min <= max", c.MinRetry, c.MaxRetry)
	case c.SendTimeout <= 0:
		return fmt.Errorf("push: send timeout %s must be positive", c.SendTimeout)
	case c.TokenSource != nil && c.ProjectID == "":
		return errors.New("push: a token source needs a project id (--fcm-project)")
	case c.ProjectID != "" && c.CredentialsFile == "" && c.TokenSource == nil:
		return errors.New("push: --fcm-project needs --fcm-credentials (a service-account file)")
	}
	return nil
}

// Configured reports whether FCM credentials are configured (else the log provider runs).
func (c Config) Configured() bool { return c.CredentialsFile != "" || c.TokenSource != nil }

// Deps are what push needs from the process.
type Deps struct {
	fx.In
	Log        *zap.Logger
	JS         jetstream.JetStream
	Store      store.Store
	Metrics    *consumer.Metrics     `optional:"true"`
	Registerer prometheus.Registerer `optional:"true"`
	// Consent leaves held and blocked messages out of the badge count; nil: push follows STATE
	// with a mirror of its own.
	Consent *consent.Table `optional:"true"`
}

// Push sends push notifications.
type Push struct {
	cfg      Config
	deps     Deps
	log      *zap.Logger
	sender   Sender
	met      *metrics
	timeline *timeline.Reader
	ledger   *Ledger
	settings jetstream.KeyValue
	runner   *consumer.Runner
	consent  *consent.Table
	ownTable bool // consent is this process's own mirror, stopped with it
}

// New builds push and its FCM client (reading the credentials file); Start begins consuming.
func New(cfg Config, deps Deps) (*Push, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Push{cfg: cfg, deps: deps, log: deps.Log.Named("push"), timeline: timeline.New(deps.Store, deps.JS)}
	var err error
	if p.met, err = newMetrics(deps.Registerer); err != nil {
		return nil, err
	}
	if !cfg.Configured() {
		p.sender = logSender{p.log}
		return p, nil
	}
	if cfg.ProjectID == "" {
		if cfg.ProjectID, err = projectOf(cfg.CredentialsFile); err != nil {
			return nil, err
		}
		p.cfg.ProjectID = cfg.ProjectID
	}
	// No I/O happens here; the client keeps this context for its token fetches, so it must
	// not end when New returns.
	if p.sender, err = newFCMSender(context.Background(), cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// projectOf reads project_id from a service-account file.
func projectOf(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("push: credentials: %w", err)
	}
	var sa struct {
		ProjectID string `json:"project_id"`
	}
	if err := json.Unmarshal(b, &sa); err != nil || sa.ProjectID == "" {
		return "", fmt.Errorf("push: %s has no project_id; set --fcm-project", file)
	}
	return sa.ProjectID, nil
}

// Provider is "fcm" or "log".
func (p *Push) Provider() string { return p.sender.Provider() }

// Start binds the buckets and the durable consumer and starts consuming.
func (p *Push) Start(ctx context.Context) error {
	var err error
	if p.ledger, err = OpenLedger(ctx, p.deps.JS); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if p.settings, err = p.deps.JS.KeyValue(ctx, streams.PushSettingsBucket); err != nil {
		return fmt.Errorf("push: settings bucket: %w", err)
	}
	if p.consent = p.deps.Consent; p.consent == nil {
		if p.consent, err = consent.Watch(ctx, p.deps.JS, p.log); err != nil {
			return fmt.Errorf("push: %w", err)
		}
		p.ownTable = true
	}
	cons, err := p.deps.JS.Consumer(ctx, streams.PushStream, streams.PushConsumer)
	if err != nil {
		p.stopConsent()
		return fmt.Errorf("push: consumer: %w", err)
	}
	if md := cons.CachedInfo().Config.MaxDeliver; md > 0 && p.cfg.MaxAttempts >= md {
		return fmt.Errorf("push: max attempts %d must be below the consumer's max deliver %d", p.cfg.MaxAttempts, md)
	}
	p.runner, err = consumer.Start(p.deps.JS, cons, consumer.Config{Name: "push", Workers: p.cfg.Workers},
		p.Handle, consumer.Hooks{}, p.log, p.deps.Metrics)
	if err != nil {
		p.stopConsent()
		return fmt.Errorf("push: %w", err)
	}
	if p.sender.Provider() == "log" {
		p.log.Warn("push started WITHOUT FCM credentials: notifications are logged, not sent (set --fcm-credentials and --fcm-project)",
			zap.Int("workers", p.cfg.Workers))
	} else {
		p.log.Info("push started", zap.String("provider", "fcm"), zap.String("project", p.cfg.ProjectID),
			zap.Int("workers", p.cfg.Workers), zap.Int("max_attempts", p.cfg.MaxAttempts))
	}
	return nil
}

// Stop drains the consumer.
func (p *Push) Stop(ctx context.Context) error {
	if p.runner == nil {
		return nil
	}
	err := p.runner.Stop(ctx)
	p.stopConsent()
	return err
}

func (p *Push) stopConsent() {
	if p.ownTable {
		p.consent.Stop()
		p.ownTable = false
	}
}

// failure is a device whose send failed transiently.
type failure struct {
	device string
	err    *SendError
}

// Handle processes one push request.
func (p *Push) Handle(ctx context.Context, msg jetstream.Msg) error {
	req, err := streams.DecodePushRequest(msg.Data())
	if err != nil {
		p.met.count(streams.PushFailed, "malformed")
		return consumer.Permanent(err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	attempt := int(meta.NumDelivered)
	tokens, err := p.deps.Store.PushTokens(ctx, req.UserID)
	if err != nil {
		return fmt.Errorf("push %s: %w", req.MessageID, err)
	}
	// Devices whose story is already told (a redelivery, a replayed fanout) are not sent to again.
	var todo []store.PushToken
	for _, t := range tokens {
		e, ok, err := p.ledger.Latest(ctx, req.UserID, req.MessageID, t.DeviceID)
		if err != nil {
			return err
		}
		if !ok || !e.Final() {
			todo = append(todo, t)
		}
	}
	if len(tokens) > 0 && len(todo) == 0 {
		return nil
	}
	reason, err := p.skipReason(ctx, req)
	if err != nil {
		return err
	}
	if reason == "" && len(tokens) == 0 {
		reason = streams.PushReasonNoToken
	}
	if reason != "" {
		return p.skipAll(ctx, req, todo, reason, attempt)
	}
	content, err := p.content(ctx, req)
	if err != nil {
		return err
	}
	var failures []failure
	for _, t := range todo {
		if f, err := p.sendOne(ctx, msg, req, t, content, attempt); err != nil {
			return err
		} else if f != nil {
			failures = append(failures, *f)
		}
	}
	if len(failures) == 0 {
		return nil
	}
	if attempt >= p.cfg.MaxAttempts {
		return p.deadLetter(ctx, req, failures, attempt)
	}
	delay := p.retryDelay(attempt, failures)
	for _, f := range failures {
		if err := p.record(ctx, req, f.device, streams.PushRetrying, streams.PushReasonTransient, f.err.Error(), attempt); err != nil {
			return err
		}
	}
	return consumer.RetryAfter(fmt.Errorf("push %s to %s: %d of %d devices failed (last: %v); attempt %d of %d",
		req.MessageID, req.UserID, len(failures), len(todo), failures[len(failures)-1].err, attempt, p.cfg.MaxAttempts), delay)
}

// skipReason is why nothing may be sent to any device of the user: muted, already read, or the
// message deleted.
func (p *Push) skipReason(ctx context.Context, req streams.PushRequest) (string, error) {
	switch kve, err := p.settings.Get(ctx, streams.PushSettingKey(req.UserID, req.ConversationID)); {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return "", fmt.Errorf("push %s: settings: %w", req.MessageID, err)
	default:
		var s streams.PushSetting
		if err := json.Unmarshal(kve.Value(), &s); err != nil {
			p.log.Warn("bad push setting; treated as not muted", zap.String("key", kve.Key()), zap.Error(err))
		} else if s.Muted {
			return streams.PushReasonMuted, nil
		}
	}
	w, err := p.deps.Store.Watermark(ctx, req.ConversationID, req.UserID)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", req.MessageID, err)
	}
	if w.Read >= req.Seq {
		return streams.PushReasonRead, nil
	}
	// Deleted since: for everyone, or by the user for themselves. A message the persister has
	// not stored yet was not deleted as far as the store knows, and is sent.
	switch m, err := p.deps.Store.MessageByID(ctx, req.ConversationID, req.MessageID); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return "", fmt.Errorf("push %s: message: %w", req.MessageID, err)
	case m.Deleted() || m.HiddenTo(req.UserID):
		return streams.PushReasonDeleted, nil
	}
	return "", nil
}

// skipAll records a skip for each device (or for the user when there are none).
func (p *Push) skipAll(ctx context.Context, req streams.PushRequest, todo []store.PushToken, reason string, attempt int) error {
	if len(todo) == 0 {
		return p.record(ctx, req, "", streams.PushSkipped, reason, "", attempt)
	}
	for _, t := range todo {
		if err := p.record(ctx, req, t.DeviceID, streams.PushSkipped, reason, "", attempt); err != nil {
			return err
		}
	}
	return nil
}

// content gathers what the notification says: the sender's name, the group's name, the badge.
func (p *Push) content(ctx context.Context, req streams.PushRequest) (Content, error) {
	c := Content{ConversationID: req.ConversationID, MessageID: req.MessageID, SenderID: req.SenderID, Seq: req.Seq,
		Text: req.Text, Truncated: req.Truncated}
	switch u, err := p.deps.Store.UserByID(ctx, req.SenderID); {
	case err == nil:
		c.SenderName = u.DisplayName
		if c.SenderName == "" {
			c.SenderName = u.Handle
		}
	case !errors.Is(err, store.ErrNotFound):
		return Content{}, fmt.Errorf("push %s: sender: %w", req.MessageID, err)
	}
	switch conv, err := p.deps.Store.Conversation(ctx, req.ConversationID); {
	case err == nil:
		if conv.Kind == store.Group {
			c.ConversationName = conv.Name
		}
	case !errors.Is(err, store.ErrNotFound):
		return Content{}, fmt.Errorf("push %s: conversation: %w", req.MessageID, err)
	}
	n, err := Unread(ctx, p.deps.Store, p.timeline, p.consent, req.UserID, MaxBadge)
	if err != nil {
		return Content{}, fmt.Errorf("push %s: badge: %w", req.MessageID, err)
	}
	c.Badge = n
	return c, nil
}

// sendOne sends to one device and records the outcome. It returns the failure if it was
// transient (to be retried), and an error only when recording failed.
func (p *Push) sendOne(ctx context.Context, msg jetstream.Msg, req streams.PushRequest, t store.PushToken, c Content, attempt int) (*failure, error) {
	_ = msg.InProgress() // one device's send may take SendTimeout
	m, err := Message(t.Token, c)
	if err != nil {
		return nil, p.record(ctx, req, t.DeviceID, streams.PushFailed, streams.PushReasonRejected, err.Error(), attempt)
	}
	start := time.Now()
	err = p.sender.Send(ctx, m)
	p.met.send.Observe(time.Since(start).Seconds())
	var se *SendError
	if err != nil && !errors.As(err, &se) {
		se = &SendError{Kind: Transient, Err: err}
	}
	switch {
	case err == nil:
		return nil, p.record(ctx, req, t.DeviceID, streams.PushSent, "", "", attempt)
	case se.Kind == Unregistered || se.Kind == InvalidToken:
		reason := streams.PushReasonUnregistered
		if se.Kind == InvalidToken {
			reason = streams.PushReasonInvalidToken
		}
		if err := p.removeToken(ctx, t, reason); err != nil {
			return nil, err
		}
		return nil, p.record(ctx, req, t.DeviceID, streams.PushFailed, reason, se.Error(), attempt)
	case se.Kind == Rejected:
		p.log.Warn("fcm refused a push", zap.String("user", req.UserID), zap.String("device", t.DeviceID),
			zap.String("message", req.MessageID), zap.Error(se))
		return nil, p.record(ctx, req, t.DeviceID, streams.PushFailed, streams.PushReasonRejected, se.Error(), attempt)
	}
	return &failure{device: t.DeviceID, err: se}, nil
}

// removeToken deletes a token FCM no longer accepts, unless the device registered a new one since.
func (p *Push) removeToken(ctx context.Context, t store.PushToken, reason string) error {
	now, err := p.deps.Store.PushTokens(ctx, t.UserID)
	if err != nil {
		return fmt.Errorf("push: remove token: %w", err)
	}
	for _, cur := range now {
		if cur.DeviceID == t.DeviceID && cur.Token == t.Token {
			ev := streams.StateEvent{Kind: streams.StatePushTokenRemoved, At: time.Now().UnixMilli(),
				PushToken: &streams.PushTokenState{UserID: t.UserID, DeviceID: t.DeviceID}}
			if _, err := projection.Record(ctx, p.deps.JS, p.deps.Store, ev); err != nil {
				return fmt.Errorf("push: remove token: %w", err)
			}
			p.log.Info("push token removed", zap.String("user", t.UserID), zap.String("device", t.DeviceID), zap.String("reason", reason))
			p.met.removed.WithLabelValues(reason).Inc()
		}
	}
	return nil
}

// retryDelay is FCM's Retry-After if it gave one, else MinRetry doubled per attempt, within
// [MinRetry, MaxRetry].
func (p *Push) retryDelay(attempt int, failures []failure) time.Duration {
	var d time.Duration
	for _, f := range failures {
		d = max(d, f.err.RetryAfter)
	}
	if d == 0 {
		d = p.cfg.MinRetry << min(max(attempt-1, 0), 20)
	}
	return min(max(d, p.cfg.MinRetry), p.cfg.MaxRetry)
}

// deadLetter sends the request to PUSH_DEAD with its reason and ends it.
func (p *Push) deadLetter(ctx context.Context, req streams.PushRequest, failures []failure, attempt int) error {
	reason := failures[len(failures)-1].err.Error()
	dl := streams.PushDeadLetter{V: streams.Version, Request: req, Reason: reason, Attempts: attempt, At: time.Now().UnixMilli()}
	for _, f := range failures {
		dl.Devices = append(dl.Devices, f.device)
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("encode dead letter: %w", err))
	}
	if _, err := p.deps.JS.Publish(ctx, streams.PushDeadSubject(req.UserID), b,
		jetstream.WithMsgID(streams.PushMsgID(req.MessageID, req.UserID))); err != nil {
		return fmt.Errorf("push %s: dead letter: %w", req.MessageID, err)
	}
	for _, f := range failures {
		if err := p.record(ctx, req, f.device, streams.PushFailed, streams.PushReasonDeadLetter, f.err.Error(), attempt); err != nil {
			return err
		}
	}
	return consumer.Permanent(fmt.Errorf("push %s to %s: dead-lettered to %s after %d attempts (devices %s): %s",
		req.MessageID, req.UserID, streams.PushDeadStream, attempt, strings.Join(dl.Devices, ","), reason))
}

// record writes a ledger entry and counts it.
func (p *Push) record(ctx context.Context, req streams.PushRequest, device, outcome, reason, detail string, attempt int) error {
	e := streams.PushLedgerEntry{
		UserID: req.UserID, MessageID: req.MessageID, ConversationID: req.ConversationID, DeviceID: device,
		Outcome: outcome, Reason: reason, Detail: detail, Attempt: attempt,
	}
	if outcome == streams.PushSent {
		e.Provider = p.sender.Provider()
	}
	if err := p.ledger.Put(ctx, e); err != nil {
		return fmt.Errorf("push %s: %w", req.MessageID, err)
	}
	label := reason
	if outcome == streams.PushSent {
		label = e.Provider
	}
	p.met.count(outcome, label)
	return nil
}

// metrics are push's Prometheus series.
type metrics struct {
	notifications *prometheus.CounterVec
	removed       *prometheus.CounterVec
	send          prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "push", Name: "notifications_total",
			Help: "Push outcomes per device: sent (by provider), skipped, failed and retrying (by reason).",
		}, []string{"outcome", "reason"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "push", Name: "tokens_removed_total",
			Help: "Push tokens removed because FCM no longer accepts them, by reason.",
		}, []string{"reason"}),
		send: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "natter", Subsystem: "push", Name: "send_seconds",
			Help: "Time of one send to the push provider.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.notifications, m.removed, m.send} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("push: metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) count(outcome, reason string) {
	m.notifications.WithLabelValues(outcome, reason).Inc()
}

// Module runs push in an fx graph.
var Module = fx.Module("push",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, p *Push) {
		lc.Append(fx.Hook{OnStart: p.Start, OnStop: p.Stop})
	}),
)
