// Package consumer runs natter's durable JetStream consumers: it pulls messages, hands them to a
// handler in chunks (in stream order with one worker, in parallel with more), acks what succeeds
// (with one ack a chunk on a consumer whose ack policy is AckAll, which it resets when a pull
// lost messages on the way), naks what fails with a backoff, terminates what can never succeed,
// counts everything, and drains on stop.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Handler processes one message. Return nil to ack, Permanent(err) to terminate (the message is
// never redelivered: it is malformed or can never succeed), any other error to retry later.
// Handlers must be idempotent: every message may be delivered more than once.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Prepare runs before each chunk is handled (fanout uses it to bring its routing table up to date).
// An error naks the whole chunk.
type Prepare func(ctx context.Context) error

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that no retry can fix.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool { var p permanent; return errors.As(err, &p) }

type retryAfter struct {
	err   error
	after time.Duration
}

func (r retryAfter) Error() string { return r.err.Error() }
func (r retryAfter) Unwrap() error { return r.err }

// RetryAfter marks err as transient and asks for the next attempt after d instead of the
// Backoff schedule's delay: a remote service said when to come back (HTTP Retry-After).
func RetryAfter(err error, d time.Duration) error { return retryAfter{err, d} }

// retryDelay is the delay err asks for with RetryAfter, or def.
func retryDelay(err error, def time.Duration) time.Duration {
	var ra retryAfter
	if errors.As(err, &ra) && ra.after > 0 {
		return ra.after
	}
	return def
}

// Flush runs after a chunk was handled and before its messages are acked (fanout flushes its
// publishes, so nothing acknowledged is still only in a client buffer). An error naks the chunk.
type Flush func(ctx context.Context) error

// Hooks are optional steps around each chunk.
type Hooks struct {
	Prepare Prepare
	Flush   Flush
}

// Config tunes a Runner.
type Config struct {
	Name string // for logs and metrics
	// Workers handling one chunk at once. 1 keeps stream order (fanout); more trade order for
	// throughput where order does not matter (persister: the store is keyed by seq).
	Workers int
	// MaxChunk bounds how many buffered messages are handled together.
	MaxChunk int
	// Linger, when positive, lets a chunk wait up to this long after its first message for more,
	// until MaxChunk: fewer, larger chunks for a handler whose cost is per chunk (search commits
	// one index batch per chunk), at the price of that much delay. Zero handles what is buffered
	// at once.
	Linger time.Duration
	// Gather, when positive, lets messages gather on the server between pulls: after a pull that
	// came back short of MaxChunk, the next waits this long and then takes what gathered in one
	// delivery, and one that finds nothing waits for the next message alone. Without it the
	// server sends each message on its own as it arrives once the consumer has caught up — a
	// socket write, a read and a wake-up each, and a chunk and an ack each — which is most of
	// what a consumer costs at a steady low rate. For a consumer nothing waits on (the
	// persister), at the price of up to this much more lag. Not with PriorityGroup: a no-wait
	// pull names no group.
	Gather time.Duration
	// Backoff is the redelivery delay by attempt; the last value repeats.
	Backoff []time.Duration
	// RetryInPlace retries a transient failure right here (with Backoff, telling the server the
	// message is in progress) instead of nak-ing it: a nak lets later messages overtake it, which
	// an ordered consumer must not allow. Requires Workers == 1; required on a consumer whose
	// ack policy is AckAll, whose every ack also acknowledges the messages before it.
	RetryInPlace bool
	// PriorityGroup pulls as a member of this priority group; on a consumer with a pinned-client
	// policy, only the pinned instance receives messages, the others' pulls wait.
	PriorityGroup string
	// AckDelay, on an ack-all consumer, lets the ack of a settled chunk wait up to this long for
	// a later chunk's, which acknowledges both: at a steady low rate, where each message is a
	// chunk of its own, one ack then settles what was handled in AckDelay instead of one each
	// (a write, a read and a wake-up on both sides). A chunk is acknowledged at once when what
	// waits reaches MaxChunk messages, and before anything is terminated or nak-ed and when the
	// Runner ends. The ack floor lags by up to AckDelay, so a crash repeats that much more. Not
	// with Linger or Gather, which already make chunks of what arrives over time.
	AckDelay time.Duration
}

func (c *Config) defaults() {
	if c.RetryInPlace {
		c.Workers = 1
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.MaxChunk <= 0 {
		c.MaxChunk = 256
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 10 * time.Second}
	}
}

// Metrics are the consumer kit's Prometheus series, shared by every Runner of a process.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	resets   *prometheus.CounterVec
}

// NewMetrics registers the series on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "consumer", Name: "messages_total",
			Help: "Messages handled by a consumer, by outcome (ack, nak, term).",
		}, []string{"consumer", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "natter", Subsystem: "consumer", Name: "handle_seconds",
			Help: "Time to handle one message.", Buckets: prometheus.ExponentialBuckets(0.00005, 4, 9),
		}, []string{"consumer"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "consumer", Name: "loss_resets_total",
			Help: "Pulls of an ack-all consumer that lost messages on the way, each answered by a reset of the consumer to its ack floor.",
		}, []string{"consumer"}),
	}
	if reg != nil {
		reg.MustRegister(m.handled, m.duration, m.resets)
	}
	return m
}

// Runner consumes one durable consumer until stopped.
type Runner struct {
	cfg    Config
	handle Handler
	hooks  Hooks
	log    *zap.Logger
	// This Runner's series, looked up once: a vector's lookup by label values hashes them on
	// every call, and these are counted for every message.
	handleSeconds        prometheus.Observer
	acked, naked, termed prometheus.Counter
	resets               prometheus.Counter

	puller  *puller
	reset   func(context.Context) error // resets the consumer to its ack floor
	in      chan jetstream.Msg
	held    *held // pulled, not yet settled: kept in progress
	pulled  atomic.Int64
	ackWait time.Duration
	ackAll  bool // the consumer's policy is AckAll: one ack settles a chunk
	// delivered is the delivery (consumer) sequence of the last message an ack-all Runner
	// received; only the fetch goroutine uses it.
	delivered uint64
	// stoppedShort: this ack-all Runner, stopping, left a message unhandled; it acknowledges
	// nothing after it.
	stoppedShort bool
	// owed are handled messages of an ack-all Runner whose ack waits (AckDelay), in stream
	// order, held until it is sent; owedBy fires when it is due. Only the loop uses them.
	owed     []jetstream.Msg
	owedBy   *time.Timer
	draining chan struct{} // closed by Stop: pull no more
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
}

// fetchWait bounds one pull request. Stop waits for the one under way rather than cancel it: a
// cancelled pull strands what the server already sent until AckWait, and later messages would
// overtake it.
const fetchWait = 100 * time.Millisecond

// Start begins consuming cons, one of js's consumers. The Runner owns its goroutines until Stop
// returns. An ack-all consumer is reset to its ack floor (JetStream's consumer reset: the
// server delivers again what it delivered after the floor) when a pull lost messages on the
// way (Runner.inSequence), and at start unless it pulls in a priority group, whose members
// reset it when they take it over: what an earlier puller was delivered and never settled comes
// again first, rather than be acknowledged unhandled by this Runner's next ack.
//
// It sends pull requests of its own (see puller) rather than use nats.go's Consume or Fetch:
// v1.55.0's Consume can end up with a backlog on the server and no pull request outstanding
// until its heartbeat timer fires (up to 30 s) when handlers finish a batch while the next pull
// is being sent, and its Fetch drops what a starved process received late.
func Start(js jetstream.JetStream, cons jetstream.Consumer, cfg Config, handle Handler, hooks Hooks, log *zap.Logger, met *Metrics) (*Runner, error) {
	cfg.defaults()
	if met == nil {
		met = NewMetrics(nil)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", cfg.Name, err)
	}
	if info.Config.AckPolicy == jetstream.AckAllPolicy && !cfg.RetryInPlace {
		// An ack acknowledges every earlier message too: a nak-ed one would be skipped.
		return nil, fmt.Errorf("consume %s: an ack-all consumer must retry in place", cfg.Name)
	}
	if cfg.Gather > 0 && cfg.PriorityGroup != "" {
		return nil, fmt.Errorf("consume %s: a priority group member cannot gather", cfg.Name)
	}
	if cfg.AckDelay > 0 && (info.Config.AckPolicy != jetstream.AckAllPolicy || cfg.Linger > 0 || cfg.Gather > 0) {
		return nil, fmt.Errorf("consume %s: an ack delay needs an ack-all consumer, without linger or gather", cfg.Name)
	}
	reset := func(ctx context.Context) error {
		if _, err := js.ResetConsumer(ctx, info.Stream, info.Name); err != nil {
			return fmt.Errorf("reset %s to its ack floor: %w", info.Name, err)
		}
		return nil
	}
	delivered := info.Delivered.Consumer
	if info.Config.AckPolicy == jetstream.AckAllPolicy && cfg.PriorityGroup == "" {
		// This Runner is the only puller: what an earlier one was delivered and did not settle
		// comes again at once and first, not after the ack wait behind later messages.
		if err := reset(context.Background()); err != nil {
			return nil, fmt.Errorf("consume %s: %w", cfg.Name, err)
		}
		delivered = 0
	}
	p, err := newPuller(js, cons, cfg.PriorityGroup, info.Config.MaxAckPending)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		cfg: cfg, handle: handle, hooks: hooks, log: log.With(zap.String("consumer", cfg.Name)), puller: p, reset: reset,
		handleSeconds: met.duration.WithLabelValues(cfg.Name), acked: met.handled.WithLabelValues(cfg.Name, "ack"),
		naked: met.handled.WithLabelValues(cfg.Name, "nak"), termed: met.handled.WithLabelValues(cfg.Name, "term"),
		resets: met.resets.WithLabelValues(cfg.Name),
		in:     make(chan jetstream.Msg, cfg.MaxChunk), draining: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		held: newHeld(), ackWait: info.Config.AckWait,
		ackAll: info.Config.AckPolicy == jetstream.AckAllPolicy, delivered: delivered,
	}
	go r.fetch()
	go r.loop()
	if r.ackWait > 0 {
		go r.keepInProgress()
	}
	return r, nil
}

// fetch keeps one pull request outstanding until Stop, feeding what arrives to the loop.
func (r *Runner) fetch() {
	defer close(r.in)
	defer r.puller.close()
	got := r.cfg.MaxChunk // what the last pull brought
	for attempt := 0; ; {
		select {
		case <-r.draining:
			return
		default:
		}
		var lost bool
		var err error
		got, lost, err = r.pull(got)
		if errors.Is(err, errDraining) {
			return
		}
		if lost {
			r.recoverLost()
			got = r.cfg.MaxChunk // what comes again is there now
			continue
		}
		if errors.Is(err, errPinMoved) {
			// Another instance unpinned the group, or this one did to take a dead owner's
			// partition over: pull again at once, without the old pin.
			r.log.Debug("pull: pin moved", zap.Error(err))
			err = nil
		}
		if err == nil {
			attempt = 0
			continue
		}
		// Back off, or a pull that fails at once (no responders while a NATS node restarts)
		// would spin.
		if attempt == 0 || attempt%20 == 0 {
			r.log.Warn("pull", zap.Int("attempt", attempt+1), zap.Error(err))
		}
		select {
		case <-time.After(r.cfg.Backoff[min(attempt, len(r.cfg.Backoff)-1)]):
		case <-r.draining:
			return
		}
		attempt++
	}
}

// pull asks for the next messages and hands them to the loop, got being how many the last pull
// brought; it returns how many this one brought, and whether messages were lost on the way
// before one of them (see inSequence). Without Gather it asks for up to MaxChunk, waiting up to
// fetchWait for them to arrive. With Gather: after a full pull, what is there now; after a
// short one, what is there after a pause of Gather (errDraining when Stop came first); after an
// empty one, the next message alone, waiting for it.
func (r *Runner) pull(got int) (int, bool, error) {
	batch, wait := r.cfg.MaxChunk, fetchWait
	switch {
	case r.cfg.Gather <= 0:
	case got == 0:
		batch = 1
	case got < r.cfg.MaxChunk:
		select {
		case <-time.After(r.cfg.Gather):
		case <-r.draining:
			return 0, false, errDraining
		}
		wait = 0
	default:
		wait = 0
	}
	reply, err := r.puller.send(batch, wait)
	if err != nil {
		return 0, false, err
	}
	return r.forward(reply, batch, wait)
}

// errDraining ends a pull that Stop interrupted before it was sent.
var errDraining = errors.New("draining")

// forward hands what arrives for the pull answering on reply to the loop in order, holding each
// message (kept in progress) from the moment it arrives, also while the loop is busy and the
// hand-over waits, until the pull has ended — with its batch, its status, or when this side
// stops waiting — and the loop has taken every message. It returns how many messages arrived,
// whether messages were lost before one of them (that one and the rest of the pull are dropped
// unhandled, for recoverLost), and why the pull ended if not with the messages there were.
func (r *Runner) forward(reply string, batch int, wait time.Duration) (n int, lost bool, err error) {
	p := r.puller
	giveUp := time.NewTimer(wait + pullMargin)
	defer giveUp.Stop()
	ended := false
	var queue []jetstream.Msg
	for !ended || len(queue) > 0 {
		var out chan<- jetstream.Msg
		var next jetstream.Msg
		if len(queue) > 0 {
			out, next = r.in, queue[0]
		}
		arrived := p.arrived
		if ended {
			arrived = nil // the next pull hands on what still comes
		}
		select {
		case m := <-arrived:
			if isStatus(m) {
				if m.Subject == reply {
					ended, err = p.status(m)
				}
				continue // an earlier pull's, which this side stopped waiting for
			}
			if p.group != "" {
				if pin := m.Header.Get("Nats-Pin-Id"); pin != "" {
					p.pin = pin
				}
			}
			n++
			ended = n >= batch
			pm := newPulledMsg(p.nc, m)
			if lost = lost || !r.inSequence(pm); lost {
				continue
			}
			r.held.add(pm)
			r.pulled.Add(1)
			queue = append(queue, pm)
		case out <- next:
			queue = queue[1:]
		case <-giveUp.C:
			r.log.Debug("pull: no answer; pulling again", zap.String("reply", reply), zap.Int("messages", n))
			ended = true
		}
	}
	return n, lost, err
}

// inSequence reports whether m, on an ack-all consumer, is the delivery right after the last
// one this Runner received. A skipped delivery sequence means messages sent to this Runner were
// lost on the way: sent to a connection that dropped, or taken by another puller of a consumer
// that should have one (the puller itself drops nothing, see puller). The next ack would
// acknowledge those messages unhandled. A sequence at or below the last is a reset's (this
// Runner's, or another instance's of a shared consumer): deliveries start again from 1.
//
// On a consumer shared by a priority group, deliveries to another member skip sequences too
// (the pin moved away and back): that costs a needless reset, which repeats events, never loses
// one.
func (r *Runner) inSequence(m jetstream.Msg) bool {
	if !r.ackAll {
		return true
	}
	meta, err := m.Metadata()
	if err != nil {
		return true // the handler terminates it
	}
	seq := meta.Sequence.Consumer
	if seq > r.delivered+1 {
		r.log.Warn("a pull lost messages on the way; resetting the consumer to its ack floor",
			zap.Uint64("delivery", seq), zap.Uint64("expected_delivery", r.delivered+1), seqField(meta))
		return false
	}
	r.delivered = seq
	return true
}

// recoverLost answers a pull that lost messages: once the loop has settled everything before
// them (so that the ack floor is just below them), it resets the consumer, which delivers them
// again, and all after them. A Runner stopping before the reset succeeds leaves it to the next
// puller's start, which resets (Start; a fanout instance taking a partition over).
func (r *Runner) recoverLost() {
	r.resets.Inc()
	r.held.waitEmpty()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := r.reset(ctx)
		cancel()
		if err == nil {
			r.delivered = 0
			return
		}
		r.log.Warn("reset the consumer to its ack floor", zap.Int("attempt", attempt+1), zap.Error(err))
		select {
		case <-time.After(r.cfg.Backoff[min(attempt, len(r.cfg.Backoff)-1)]):
		case <-r.draining:
			r.log.Error("stopping with lost messages not delivered again; the next start must reset the consumer")
			return
		}
	}
}

// Pulled is how many messages this Runner has received. On a pinned consumer, a Runner that
// received any holds (or held) the pin.
func (r *Runner) Pulled() int64 { return r.pulled.Load() }

// Stop drains: no new messages are pulled, those pulled are handled, then it returns. If ctx
// ends first, in-flight handlers are cancelled (their messages are redelivered later).
func (r *Runner) Stop(ctx context.Context) error {
	close(r.draining)
	select {
	case <-r.done:
		r.cancel()
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return fmt.Errorf("stop consumer %s: %w", r.cfg.Name, ctx.Err())
	}
}

func (r *Runner) loop() {
	defer close(r.done)
	defer r.ackOwed() // what was handled is acknowledged, also when stopping
	chunk := make([]jetstream.Msg, 0, r.cfg.MaxChunk)
	var linger *time.Timer
	for {
		m, ok := r.next()
		if !ok {
			return
		}
		chunk = append(chunk[:0], m)
		var expired <-chan time.Time // nil without Linger: only what is buffered joins the chunk
		if r.cfg.Linger > 0 {
			if linger == nil {
				linger = time.NewTimer(r.cfg.Linger)
			} else {
				linger.Reset(r.cfg.Linger)
			}
			expired = linger.C
		}
	fill:
		for len(chunk) < r.cfg.MaxChunk {
			var m jetstream.Msg
			var ok bool
			if expired == nil {
				select {
				case m, ok = <-r.in:
				default:
					break fill
				}
			} else {
				select {
				case m, ok = <-r.in:
				case <-expired:
					break fill
				}
			}
			if !ok {
				break fill
			}
			chunk = append(chunk, m)
		}
		if linger != nil {
			linger.Stop()
		}
		r.run(chunk)
	}
}

// next waits for the next message, sending the owed ack if it falls due first.
func (r *Runner) next() (jetstream.Msg, bool) {
	if len(r.owed) > 0 {
		select {
		case m, ok := <-r.in:
			return m, ok
		case <-r.owedBy.C:
			r.ackOwed()
		}
	}
	m, ok := <-r.in
	return m, ok
}

// owe sends the ack of the messages just added to owed (the ack of the last acknowledges them
// all), or defers it until AckDelay after the first message owed, or until MaxChunk are owed;
// owing says whether an ack was owed already.
func (r *Runner) owe(owing bool) {
	switch {
	case r.cfg.AckDelay <= 0 || len(r.owed) >= r.cfg.MaxChunk:
		r.ackOwed()
	case owing:
	case r.owedBy == nil:
		r.owedBy = time.NewTimer(r.cfg.AckDelay)
	default:
		r.owedBy.Reset(r.cfg.AckDelay)
	}
}

// ackOwed sends the owed ack, if any: the last owed message's.
func (r *Runner) ackOwed() {
	if len(r.owed) == 0 {
		return
	}
	if r.owedBy != nil {
		r.owedBy.Stop()
	}
	last := r.owed[len(r.owed)-1]
	if err := last.Ack(); err != nil {
		r.log.Warn("ack", zap.String("subject", last.Subject()), zap.Error(err))
	}
	for _, m := range r.owed {
		r.held.remove(m) // after the ack: recoverLost resets once nothing is held
	}
	clear(r.owed)
	r.owed = r.owed[:0]
}

func (r *Runner) run(chunk []jetstream.Msg) {
	results := make([]error, len(chunk))
	if r.hooks.Prepare != nil {
		if err := r.hook("prepare", r.hooks.Prepare); err != nil {
			r.log.Warn("prepare chunk", zap.Int("messages", len(chunk)), zap.Error(err))
			for i := range results {
				results[i] = err
			}
			r.settleAll(chunk, results)
			return
		}
	}
	if r.cfg.Workers == 1 || len(chunk) == 1 {
		for i, m := range chunk {
			results[i] = r.one(m)
		}
	} else {
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(r.cfg.Workers, len(chunk)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					results[i] = r.one(chunk[i])
				}
			}()
		}
		for i := range chunk {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	if r.hooks.Flush != nil {
		if err := r.hook("flush", r.hooks.Flush); err != nil {
			r.log.Warn("flush chunk", zap.Int("messages", len(chunk)), zap.Error(err))
			for i := range results {
				if results[i] == nil {
					results[i] = err
				}
			}
		}
	}
	r.settleAll(chunk, results)
}

// hook runs a chunk hook; with RetryInPlace it retries until it succeeds or the runner stops,
// since a nak of the chunk would let later messages overtake it.
func (r *Runner) hook(name string, h func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := h(r.ctx)
		if err == nil || !r.cfg.RetryInPlace || r.ctx.Err() != nil {
			return err
		}
		delay := r.cfg.Backoff[min(attempt, len(r.cfg.Backoff)-1)]
		r.log.Warn("chunk hook failed; retrying in place", zap.String("hook", name), zap.Int("attempt", attempt+1), zap.Duration("delay", delay), zap.Error(err))
		select {
		case <-time.After(delay):
		case <-r.ctx.Done():
			return err
		}
	}
}

func (r *Runner) one(m jetstream.Msg) error {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := r.handle(r.ctx, m)
		r.handleSeconds.Observe(time.Since(start).Seconds())
		if err == nil || IsPermanent(err) || !r.cfg.RetryInPlace || r.ctx.Err() != nil {
			return err
		}
		delay := retryDelay(err, r.cfg.Backoff[min(attempt, len(r.cfg.Backoff)-1)])
		r.log.Warn("handle failed; retrying in place", zap.String("subject", m.Subject()), zap.Int("attempt", attempt+1), zap.Duration("delay", delay), zap.Error(err))
		_ = m.InProgress()
		select {
		case <-time.After(delay):
		case <-r.ctx.Done():
			return err
		}
	}
}

// settleAll settles a chunk's messages, which are in stream order.
//
// On an ack-all consumer one ack, of the last message of the chunk's settled prefix, acknowledges
// the whole prefix (a terminated message in it is terminated on its own first). The prefix ends
// at the first transient failure, which only a stopping Runner leaves (transient failures are
// retried in place): that message and every one after it, in this chunk and the later ones, are
// nak-ed, never acknowledged, even those handled meanwhile.
func (r *Runner) settleAll(chunk []jetstream.Msg, results []error) {
	if !r.ackAll {
		for i, m := range chunk {
			r.settle(m, results[i])
		}
		return
	}
	settled := len(chunk)
	if r.stoppedShort {
		settled = 0
	}
	for i, err := range results[:settled] {
		if err != nil && !IsPermanent(err) {
			settled = i
			break
		}
	}
	if settled < len(chunk) {
		r.stoppedShort = true
	}
	if settled < len(chunk) || slices.ContainsFunc(results, func(err error) bool { return err != nil }) {
		r.ackOwed() // before a term or a nak
	}
	acked := 0
	for i, m := range chunk[:settled] {
		if results[i] != nil {
			r.settle(m, results[i])
			continue
		}
		acked++
	}
	if acked > 0 {
		r.acked.Add(float64(acked))
		termed := results[settled-1] != nil // the last of the prefix: its term acknowledged the prefix
		owing := len(r.owed) > 0
		for i, m := range chunk[:settled] {
			switch {
			case results[i] != nil:
			case termed:
				r.held.remove(m)
			default:
				r.owed = append(r.owed, m)
			}
		}
		if !termed {
			r.owe(owing)
		}
	}
	for i, m := range chunk[settled:] {
		err := results[settled+i]
		if err == nil || IsPermanent(err) {
			err = errStoppedShort
		}
		r.settle(m, err)
	}
}

// errStoppedShort naks what an ack-all Runner handled after a message it stopped retrying.
var errStoppedShort = errors.New("an earlier message is not handled yet")

// settle acks, terminates or naks one message by the outcome of handling it.
func (r *Runner) settle(m jetstream.Msg, err error) {
	defer r.held.remove(m)
	switch {
	case err == nil:
		r.acked.Inc()
		if aerr := m.Ack(); aerr != nil {
			r.log.Warn("ack", zap.String("subject", m.Subject()), zap.Error(aerr))
		}
	case IsPermanent(err):
		r.termed.Inc()
		meta, _ := m.Metadata()
		r.log.Error("message can never be handled; terminated", zap.String("subject", m.Subject()), seqField(meta), zap.Error(err))
		if terr := m.TermWithReason(err.Error()); terr != nil {
			r.log.Warn("term", zap.String("subject", m.Subject()), zap.Error(terr))
		}
	default:
		r.naked.Inc()
		meta, _ := m.Metadata()
		delay := r.cfg.Backoff[len(r.cfg.Backoff)-1]
		if meta != nil && int(meta.NumDelivered) <= len(r.cfg.Backoff) {
			delay = r.cfg.Backoff[max(meta.NumDelivered, 1)-1]
		}
		delay = retryDelay(err, delay)
		if r.ctx.Err() == nil {
			r.log.Warn("handle failed; will retry", zap.String("subject", m.Subject()), seqField(meta), zap.Duration("delay", delay), zap.Error(err))
		}
		if nerr := m.NakWithDelay(delay); nerr != nil {
			r.log.Warn("nak", zap.String("subject", m.Subject()), zap.Error(nerr))
		}
	}
}

func seqField(meta *jetstream.MsgMetadata) zap.Field {
	if meta == nil {
		return zap.Skip()
	}
	return zap.Uint64("seq", meta.Sequence.Stream)
}

// maxHold bounds how long a message is kept in progress: a handler stuck longer than this lets
// the server redeliver it (to another instance, if this one stopped pulling).
const maxHold = 2 * time.Minute

// held are the messages pulled and not yet settled, with the time each was pulled.
type held struct {
	mu    sync.Mutex
	since map[jetstream.Msg]time.Time
	empty *sync.Cond // broadcast when the last is removed
}

func newHeld() *held {
	h := &held{since: map[jetstream.Msg]time.Time{}}
	h.empty = sync.NewCond(&h.mu)
	return h
}

func (h *held) add(m jetstream.Msg) {
	h.mu.Lock()
	h.since[m] = time.Now()
	h.mu.Unlock()
}

func (h *held) remove(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.since, m)
	if len(h.since) == 0 {
		h.empty.Broadcast()
	}
	h.mu.Unlock()
}

// waitEmpty returns once no message is held.
func (h *held) waitEmpty() {
	h.mu.Lock()
	for len(h.since) > 0 {
		h.empty.Wait()
	}
	h.mu.Unlock()
}

// keepInProgress tells the server, every third of the ack wait, that each held message is
// still being worked on: messages waiting behind a slow chunk are not redelivered (to this
// instance as duplicates, or — for a pinned consumer — out of order to the next owner).
func (r *Runner) keepInProgress() {
	tick := time.NewTicker(r.ackWait / 3)
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-tick.C:
		}
		r.held.mu.Lock()
		var ms []jetstream.Msg
		for m, since := range r.held.since {
			if time.Since(since) < maxHold {
				ms = append(ms, m)
			}
		}
		r.held.mu.Unlock()
		for _, m := range ms {
			_ = m.InProgress()
		}
	}
}
