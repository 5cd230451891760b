package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

const testDurable = "kit"

// env is an embedded nats-server with natter's streams and one explicit-ack durable on CHAT.
type env struct {
	ctx  context.Context
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer

	published uint64 // messages published by publishMore
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvAcking(t, jetstream.AckExplicitPolicy)
}

// newEnvAcking is newEnv with a durable of the given ack policy.
func newEnvAcking(t *testing.T, policy jetstream.AckPolicy) *env {
	t.Helper()
	te := natsxtest.Start(t)
	ctx, nc, js := te.Ctx, te.NC, te.JS
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.ChatStream, jetstream.ConsumerConfig{
		Durable:       testDurable,
		FilterSubject: streams.ChatAll,
		AckPolicy:     policy,
		AckWait:       10 * time.Second, // far beyond every test: redeliveries come only from naks
		MaxDeliver:    10,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, srv: te.Server, nc: nc, js: js, cons: cons}
}

// publish puts n messages on chat.c1.msg whose bodies are their ordinal 1..n (= stream seq in a
// fresh stream) and returns the last seq.
func (e *env) publish(t *testing.T, n int) uint64 {
	t.Helper()
	var last uint64
	for i := 0; i < n; i++ {
		ack, err := e.js.Publish(e.ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(strconv.Itoa(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	return last
}

// publishMore continues the numbering of publish: n more messages, returning the last seq.
func (e *env) publishMore(t *testing.T, n int) uint64 {
	t.Helper()
	var last uint64
	for i := 0; i < n; i++ {
		e.published++
		ack, err := e.js.Publish(e.ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(strconv.FormatUint(e.published, 10)))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	return last
}

func (e *env) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	if err := e.nc.Flush(); err != nil { // acks are published without waiting; let them land first
		t.Fatal(err)
	}
	ci, err := e.cons.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// settled waits until every message up to last is acked (or terminated) and nothing is pending.
// Its deadline outlasts the nats.go pull stall that TestNoIdleStallOnBacklog exposes (recovered by
// the missed-heartbeat timer after 30s), so that only that test fails on it.
func (e *env) settled(t *testing.T, last uint64) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		ci := e.info(t)
		if ci.AckFloor.Stream == last && ci.NumAckPending == 0 && ci.NumPending == 0 {
			return ci
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled at %d: ack floor %d, ack pending %d, pending %d, redelivered %d, waiting pulls %d, delivered %d",
				last, ci.AckFloor.Stream, ci.NumAckPending, ci.NumPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered.Consumer)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) start(t *testing.T, cfg Config, h Handler, hooks Hooks) *Runner {
	t.Helper()
	return e.startWith(t, cfg, h, hooks, nil)
}

// startWith is start counting into met (nil: unregistered series of its own).
func (e *env) startWith(t *testing.T, cfg Config, h Handler, hooks Hooks, met *Metrics) *Runner {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.Backoff == nil {
		cfg.Backoff = []time.Duration{20 * time.Millisecond}
	}
	r, err := Start(e.js, e.cons, cfg, h, hooks, zap.NewNop(), met)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return r
}

// delivery is one handler call: the message's stream seq and its delivery count.
type delivery struct {
	seq       uint64
	delivered uint64
}

// recorder is a Handler that records every call and returns what decide says.
type recorder struct {
	mu     sync.Mutex
	calls  []delivery
	decide func(d delivery) error
}

func (r *recorder) handle(_ context.Context, m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return Permanent(err)
	}
	d := delivery{seq: meta.Sequence.Stream, delivered: meta.NumDelivered}
	if body, _ := strconv.ParseUint(string(m.Data()), 10, 64); body != d.seq {
		return Permanent(fmt.Errorf("body %q at seq %d", m.Data(), d.seq))
	}
	r.mu.Lock()
	r.calls = append(r.calls, d)
	r.mu.Unlock()
	if r.decide != nil {
		return r.decide(d)
	}
	return nil
}

func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) seqs() []uint64 {
	var out []uint64
	for _, d := range r.snapshot() {
		out = append(out, d.seq)
	}
	return out
}

func (r *recorder) count(seq uint64) int {
	n := 0
	for _, d := range r.snapshot() {
		if d.seq == seq {
			n++
		}
	}
	return n
}

func (r *recorder) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d handler calls, want %d: %v", len(r.snapshot()), n, r.snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestPermanentWrapsAndUnwraps(t *testing.T) {
	base := errors.New("bad payload")
	p := Permanent(base)
	if !IsPermanent(p) || !errors.Is(p, base) || p.Error() != "bad payload" {
		t.Fatalf("Permanent(%v) = %v; permanent %v, is base %v", base, p, IsPermanent(p), errors.Is(p, base))
	}
	wrapped := fmt.Errorf("persist: %w", p)
	if !IsPermanent(wrapped) || !errors.Is(wrapped, base) {
		t.Fatal("a wrapped Permanent error must stay permanent")
	}
	if IsPermanent(base) || IsPermanent(nil) || IsPermanent(context.Canceled) {
		t.Fatal("plain errors are not permanent")
	}
}

func TestAcksOnNil(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 50)
	rec := &recorder{}
	e.start(t, Config{Workers: 4, MaxChunk: 64}, rec.handle, Hooks{})
	ci := e.settled(t, last)
	if ci.NumRedelivered != 0 || ci.Delivered.Consumer != last {
		t.Fatalf("redelivered %d, delivered %d; want 0, %d", ci.NumRedelivered, ci.Delivered.Consumer, last)
	}
	got := rec.seqs()
	slices.Sort(got)
	if !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled %v, want each of 1..%d once", got, last)
	}
	for _, d := range rec.snapshot() {
		if d.delivered != 1 {
			t.Fatalf("seq %d delivered %d times", d.seq, d.delivered)
		}
	}
}

func TestPermanentErrorTerminates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 5)
	rec := &recorder{decide: func(d delivery) error {
		if d.seq == 3 {
			return Permanent(errors.New("malformed"))
		}
		return nil
	}}
	e.start(t, Config{Workers: 1}, rec.handle, Hooks{})
	e.settled(t, last)
	time.Sleep(200 * time.Millisecond) // ten backoffs: a nak would have come back by now
	ci := e.info(t)
	if ci.NumAckPending != 0 || ci.NumRedelivered != 0 || ci.AckFloor.Stream != last || ci.Delivered.Consumer != last {
		t.Fatalf("ack pending %d, redelivered %d, ack floor %d, delivered %d; want 0, 0, %d, %d",
			ci.NumAckPending, ci.NumRedelivered, ci.AckFloor.Stream, ci.Delivered.Consumer, last, last)
	}
	if n := rec.count(3); n != 1 {
		t.Fatalf("terminated message handled %d times, want 1", n)
	}
	if got := rec.seqs(); !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled %v", got)
	}
}

func TestTransientErrorNaksAndRedelivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 5)
	rec := &recorder{decide: func(d delivery) error {
		if d.seq == 2 && d.delivered == 1 {
			return errors.New("store unavailable")
		}
		return nil
	}}
	e.start(t, Config{Workers: 1}, rec.handle, Hooks{})
	ci := e.settled(t, last)
	if ci.Delivered.Consumer != last+1 {
		t.Fatalf("consumer delivered %d times, want %d (one redelivery)", ci.Delivered.Consumer, last+1)
	}
	var seq2 []uint64
	for _, d := range rec.snapshot() {
		if d.seq == 2 {
			seq2 = append(seq2, d.delivered)
		}
	}
	if !slices.Equal(seq2, []uint64{1, 2}) {
		t.Fatalf("seq 2 deliveries %v, want [1 2]", seq2)
	}
	if got := len(rec.snapshot()); got != int(last)+1 {
		t.Fatalf("%d handler calls, want %d", got, last+1)
	}
}

func TestOneWorkerKeepsStreamOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.publish(t, 150)
	rec := &recorder{}
	e.start(t, Config{Workers: 1, MaxChunk: 16}, rec.handle, Hooks{})
	// More arrive while it runs.
	last := first
	for i := 0; i < 150; i++ {
		ack, err := e.js.Publish(e.ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(strconv.FormatUint(first+uint64(i)+1, 10)))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	e.settled(t, last)
	if got := rec.seqs(); !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled out of stream order: %v", got)
	}
}

func TestRetryInPlaceKeepsOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 10)
	attempts := 0
	rec := &recorder{decide: func(d delivery) error {
		if d.seq == 3 {
			attempts++
			if attempts <= 3 {
				return errors.New("transient")
			}
		}
		return nil
	}}
	// Workers 4 is overridden: retrying in place needs one worker.
	e.start(t, Config{Workers: 4, MaxChunk: 16, RetryInPlace: true, Backoff: []time.Duration{5 * time.Millisecond, 15 * time.Millisecond}}, rec.handle, Hooks{})
	ci := e.settled(t, last)
	want := []delivery{{1, 1}, {2, 1}, {3, 1}, {3, 1}, {3, 1}, {3, 1}}
	for s := uint64(4); s <= last; s++ {
		want = append(want, delivery{s, 1})
	}
	if got := rec.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("handler calls\n got %v\nwant %v", got, want)
	}
	if ci.NumRedelivered != 0 || ci.Delivered.Consumer != last {
		t.Fatalf("retried in place, yet the server redelivered: delivered %d, redelivered %d", ci.Delivered.Consumer, ci.NumRedelivered)
	}
}

// Without RetryInPlace a failing message is nak-ed and later ones overtake it: the reason fanout
// retries in place.
func TestNakLetsLaterMessagesOvertake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 4)
	rec := &recorder{decide: func(d delivery) error {
		if d.seq == 1 && d.delivered == 1 {
			return errors.New("transient")
		}
		return nil
	}}
	e.start(t, Config{Workers: 1, MaxChunk: 4, Backoff: []time.Duration{time.Second}}, rec.handle, Hooks{})
	e.settled(t, last)
	if got := rec.seqs(); !slices.Equal(got, []uint64{1, 2, 3, 4, 1}) {
		t.Fatalf("handled %v, want [1 2 3 4 1]", got)
	}
}

func TestPrepareErrorNaksChunk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 6)
	var mu sync.Mutex
	prepares := 0
	rec := &recorder{}
	prepare := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		prepares++
		if prepares == 1 {
			return errors.New("routes not ready")
		}
		return nil
	}
	e.start(t, Config{Workers: 1, MaxChunk: 6}, rec.handle, Hooks{Prepare: prepare})
	e.settled(t, last)
	calls := rec.snapshot()
	got := rec.seqs()
	slices.Sort(got)
	if !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled %v; a failed prepare must not handle its chunk, and every message once after", got)
	}
	// Seq 1 was in the first chunk, whose prepare failed: it is handled only on redelivery.
	for _, d := range calls {
		if d.seq == 1 && d.delivered != 2 {
			t.Fatalf("seq 1 handled at delivery %d, want 2 (after the nak)", d.delivered)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if prepares < 2 {
		t.Fatalf("%d prepares", prepares)
	}
}

// With RetryInPlace a failing hook is retried where it is: a nak would let later messages
// overtake the chunk.
func TestPrepareErrorRetriedInPlace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 4)
	var mu sync.Mutex
	prepares := 0
	prepare := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		prepares++
		if prepares <= 2 {
			return errors.New("routes not ready")
		}
		return nil
	}
	rec := &recorder{}
	e.start(t, Config{MaxChunk: 4, RetryInPlace: true, Backoff: []time.Duration{5 * time.Millisecond}}, rec.handle, Hooks{Prepare: prepare})
	ci := e.settled(t, last)
	want := []delivery{{1, 1}, {2, 1}, {3, 1}, {4, 1}}
	if got := rec.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("handler calls %v, want %v", got, want)
	}
	if ci.NumRedelivered != 0 || ci.Delivered.Consumer != last {
		t.Fatalf("delivered %d, redelivered %d", ci.Delivered.Consumer, ci.NumRedelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	if prepares < 3 {
		t.Fatalf("%d prepares, want the two failures retried", prepares)
	}
}

func TestFlushRunsBeforeAcks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 40)
	var mu sync.Mutex
	var chunk []uint64
	var chunks int
	var violations []string
	rec := &recorder{decide: func(d delivery) error {
		mu.Lock()
		chunk = append(chunk, d.seq)
		mu.Unlock()
		return nil
	}}
	flush := func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if err := e.nc.Flush(); err != nil { // any ack already sent has now reached the server
			return err
		}
		ci, err := e.cons.Info(ctx)
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			violations = append(violations, "flush without a handled chunk")
		} else if ci.AckFloor.Stream >= chunk[0] || ci.NumAckPending < len(chunk) {
			violations = append(violations, fmt.Sprintf("chunk %v: at flush ack floor %d, ack pending %d",
				chunk, ci.AckFloor.Stream, ci.NumAckPending))
		}
		chunks++
		chunk = chunk[:0]
		return nil
	}
	e.start(t, Config{Workers: 1, MaxChunk: 8}, rec.handle, Hooks{Flush: flush})
	e.settled(t, last)
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("acked before flush: %v", violations)
	}
	if chunks == 0 {
		t.Fatal("flush never ran")
	}
}

func TestFlushErrorNaksChunk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 3)
	var mu sync.Mutex
	flushes := 0
	rec := &recorder{}
	flush := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		flushes++
		if flushes == 1 {
			return errors.New("flush failed")
		}
		return nil
	}
	e.start(t, Config{Workers: 1, MaxChunk: 3}, rec.handle, Hooks{Flush: flush})
	e.settled(t, last)
	// Seq 1 was in the first chunk: handled, flush failed, nak-ed, handled again.
	if n := rec.count(1); n != 2 {
		t.Fatalf("seq 1 handled %d times, want 2: %v", n, rec.snapshot())
	}
	for _, d := range rec.snapshot() {
		if d.seq == 1 && d.delivered == 2 {
			return
		}
	}
	t.Fatalf("seq 1 not redelivered: %v", rec.snapshot())
}

func TestStopDrainsBufferedMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 100)
	var afterStop sync.Map
	stopped := make(chan struct{})
	rec := &recorder{decide: func(d delivery) error {
		select {
		case <-stopped:
			afterStop.Store(d.seq, true)
		default:
		}
		time.Sleep(2 * time.Millisecond)
		return nil
	}}
	r, err := Start(e.js, e.cons, Config{Name: "test", Workers: 1, MaxChunk: 10}, rec.handle, Hooks{}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCalls(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	close(stopped)
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("stop took %s", d)
	}
	n := uint64(len(rec.snapshot()))
	time.Sleep(100 * time.Millisecond)
	if got := uint64(len(rec.snapshot())); got != n {
		t.Fatalf("handled %d messages after Stop returned", got-n)
	}
	afterStop.Range(func(k, _ any) bool { t.Errorf("seq %v handled after Stop", k); return true })
	// Everything handled was acked before Stop returned; nothing handled twice; in order.
	if got := rec.seqs(); !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("handled %v", got)
	}
	if ci := e.info(t); ci.AckFloor.Stream != n {
		t.Fatalf("ack floor %d after stop, want %d (every handled message acked)", ci.AckFloor.Stream, n)
	}
	if n > last {
		t.Fatalf("handled %d of %d", n, last)
	}
	// A second consumer run picks up exactly where the first left off.
	rec2 := &recorder{}
	e.start(t, Config{Workers: 1}, rec2.handle, Hooks{})
	e.settled(t, last)
	if got := rec2.seqs(); len(got) == 0 || got[0] != n+1 || got[len(got)-1] != last {
		t.Fatalf("second run handled %v, want %d..%d", got, n+1, last)
	}
}

func TestStopWithExpiredContext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish(t, 3)
			entered := make(chan struct{}, 10)
			var sawCancel sync.WaitGroup
			sawCancel.Add(1)
			var once sync.Once
			handler := func(ctx context.Context, m jetstream.Msg) error {
				entered <- struct{}{}
				<-ctx.Done() // a handler stuck until its context ends
				once.Do(sawCancel.Done)
				return ctx.Err()
			}
			r, err := Start(e.js, e.cons, Config{Name: "test", Workers: 1, MaxChunk: 3}, handler, Hooks{}, zap.NewNop(), nil)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("handler never called")
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Stop(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("stop: %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Stop with an expired context did not return")
			}
			sawCancel.Wait()
			// The stuck message was not acked: it will be redelivered.
			if ci := e.info(t); ci.AckFloor.Stream != 0 {
				t.Fatalf("ack floor %d after a cancelled handler, want 0", ci.AckFloor.Stream)
			}
		})
	}
}

// A consumer with a backlog never sits idle: the backlog is handled promptly, also when handlers
// finish a whole pull batch before the client is done sending its next pull request.
func TestNoIdleStallOnBacklog(t *testing.T) {
	// Not parallel: the stall needs handlers that keep up with the server, as on an idle machine.
	e := newEnv(t)
	rec := &recorder{}
	var total uint64
	for round := 0; round < 30; round++ {
		total = e.publishMore(t, 20)
		r, err := Start(e.js, e.cons, Config{Name: "test", Workers: 4, MaxChunk: 4}, rec.handle, Hooks{}, zap.NewNop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for uint64(len(rec.snapshot())) < total {
			if time.Now().After(deadline) {
				ci := e.info(t)
				_ = r.Stop(e.ctx)
				t.Fatalf("round %d: %d of %d handled after 2s; the server holds %d undelivered with %d pull requests waiting (delivered %d, ack floor %d)",
					round, len(rec.snapshot()), total, ci.NumPending, ci.NumWaiting, ci.Delivered.Consumer, ci.AckFloor.Stream)
			}
			time.Sleep(time.Millisecond)
		}
		if err := r.Stop(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// A chunk slower than the ack wait, with more messages waiting behind it: the runner keeps them
// all in progress, so nothing is redelivered (for an ordered consumer a redelivery is a
// duplicate at best, out of order at worst).
func TestSlowChunkIsNotRedelivered(t *testing.T) {
	// Parallel: it spends its 5 s asleep in handlers, and its own server is the only one it uses.
	t.Parallel()
	e := newEnv(t)
	var err error
	e.cons, err = e.js.CreateOrUpdateConsumer(e.ctx, streams.ChatStream, jetstream.ConsumerConfig{
		Durable: testDurable, FilterSubject: streams.ChatAll, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxDeliver: 10, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	last := e.publish(t, 20)
	rec := &recorder{decide: func(d delivery) error {
		if d.seq%5 == 1 {
			time.Sleep(1300 * time.Millisecond) // each chunk start outlasts the ack wait
		}
		return nil
	}}
	e.start(t, Config{Workers: 1, MaxChunk: 5}, rec.handle, Hooks{})
	ci := e.settled(t, last)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if ci.NumRedelivered != 0 || len(rec.calls) != int(last) {
		t.Fatalf("%d calls for %d messages, %d redelivered: %+v", len(rec.calls), last, ci.NumRedelivered, rec.calls)
	}
	for _, c := range rec.calls {
		if c.delivered != 1 {
			t.Fatalf("seq %d delivered %d times", c.seq, c.delivered)
		}
	}
}

// A lingering chunk gathers a trickle of messages into one chunk, is handled at once when it is
// full, and does not hold Stop up: draining ends the wait.
func TestLingerGathersATrickleIntoOneChunk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var chunks []int
	n := 0
	rec := &recorder{decide: func(delivery) error { mu.Lock(); n++; mu.Unlock(); return nil }}
	flush := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		chunks = append(chunks, n)
		n = 0
		return nil
	}
	r, err := Start(e.js, e.cons, Config{Name: "linger", MaxChunk: 20, Linger: time.Minute}, rec.handle, Hooks{Flush: flush}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // a trickle: each message its own pull without Linger
		e.publishMore(t, 1)
		time.Sleep(10 * time.Millisecond)
	}
	last := e.settled(t, 20).AckFloor.Stream
	e.publishMore(t, 5)
	for deadline := time.Now().Add(10 * time.Second); r.Pulled() < 25; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pulled %d of 25", r.Pulled())
		}
	}
	if calls := len(rec.snapshot()); calls != 20 {
		t.Fatalf("%d handler calls while the five linger, want 20", calls)
	}
	stopPromptly(t, r, "while a chunk lingers", 15*time.Second)
	e.settled(t, last+5)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(chunks, []int{20, 5}) {
		t.Fatalf("chunks %v, want [20 5]: one full chunk from the trickle, then the five at stop", chunks)
	}
}

// chunkSizes records, as a Handler and a Flush hook, the seqs handled and the size of each chunk.
type chunkSizes struct {
	mu     sync.Mutex
	n      int
	chunks []int
	seqs   []uint64
}

func (c *chunkSizes) handle(_ context.Context, m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.seqs = append(c.seqs, md.Sequence.Stream)
	return nil
}

func (c *chunkSizes) flush(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chunks = append(c.chunks, c.n)
	c.n = 0
	return nil
}

func (c *chunkSizes) snapshot() (chunks []int, seqs []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.chunks), slices.Clone(c.seqs)
}

// With Gather, a trickle reaches the handler in one chunk a pause rather than one a message —
// what gathered on the server comes in one delivery — every message once and in order.
func TestGatherTakesATrickleInFewChunks(t *testing.T) {
	t.Parallel()
	for _, ackAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("ack all %v", ackAll), func(t *testing.T) {
			t.Parallel()
			policy, cfg := jetstream.AckExplicitPolicy, Config{Gather: 100 * time.Millisecond}
			if ackAll {
				policy, cfg.RetryInPlace = jetstream.AckAllPolicy, true
			}
			e := newEnvAcking(t, policy)
			var c chunkSizes
			e.start(t, cfg, c.handle, Hooks{Flush: c.flush})
			const n = 60
			began := time.Now()
			for range n { // without Gather each message is a chunk of its own
				e.publishMore(t, 1)
				time.Sleep(5 * time.Millisecond)
			}
			took := time.Since(began)
			e.settled(t, n)
			chunks, seqs := c.snapshot()
			if !slices.Equal(seqs, seqRange(1, n)) {
				t.Fatalf("handled %v, want 1..%d once each in order", seqs, n)
			}
			// About one chunk a pause, plus the first message alone and the remainder after the
			// trickle; a delivery may come in two chunks when the handler starts on it before all
			// of it has been handed over.
			if most := 2*int(took/cfg.Gather) + 4; len(chunks) > most {
				t.Fatalf("%d chunks %v for a trickle of %s, want at most %d", len(chunks), chunks, took.Round(time.Millisecond), most)
			}
		})
	}
}

// After an empty pull a gathering Runner waits for the next message itself, not for a pause: the
// first message after a quiet spell is handled at once. What follows it waits for the pause, and
// Stop does not: it ends the pause, and what gathered stays unacknowledged for the next Runner.
func TestGatherHandlesTheFirstMessageAtOnceAndStopEndsThePause(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c chunkSizes
	r, err := Start(e.js, e.cons, Config{Name: "gather", Gather: time.Hour}, c.handle, Hooks{Flush: c.flush}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // an empty pull: the Runner now waits for the next message
	e.publishMore(t, 1)
	e.settled(t, 1)
	e.publishMore(t, 5)
	time.Sleep(300 * time.Millisecond)
	if _, seqs := c.snapshot(); !slices.Equal(seqs, []uint64{1}) {
		t.Fatalf("handled %v during the pause, want [1]", seqs)
	}
	stopPromptly(t, r, "during a pause", 10*time.Second)
	if ci := e.info(t); ci.AckFloor.Stream != 1 || ci.NumPending != 5 {
		t.Fatalf("after stop: ack floor %d, pending %d, want 1 and 5", ci.AckFloor.Stream, ci.NumPending)
	}
	e.start(t, Config{}, c.handle, Hooks{Flush: c.flush})
	e.settled(t, 6)
	if _, seqs := c.snapshot(); !slices.Equal(seqs, seqRange(1, 6)) {
		t.Fatalf("handled %v, want 1..6", seqs)
	}
}

// stopPromptly stops r, failing the test if Stop fails (given 20 s) or takes longer than limit:
// a Runner waiting for more messages (a linger, a gather pause) must not hold Stop up.
func stopPromptly(t *testing.T, r *Runner, while string, limit time.Duration) {
	t.Helper()
	stopped := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("stop %s: %v", while, err)
	}
	if took := time.Since(stopped); took > limit {
		t.Errorf("stop waited %s %s", took, while)
	}
}

// TestOutcomesAreCounted: each settled message counts once under its outcome, per consumer.
func TestOutcomesAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	last := e.publish(t, 5)
	rec := &recorder{decide: func(d delivery) error {
		switch {
		case d.seq == 2 && d.delivered == 1:
			return errors.New("store unavailable")
		case d.seq == 3:
			return Permanent(errors.New("malformed"))
		}
		return nil
	}}
	met := NewMetrics(nil)
	e.startWith(t, Config{Name: "counted", Workers: 1}, rec.handle, Hooks{}, met)
	e.settled(t, last) // each outcome is counted before the server is told of it
	for outcome, want := range map[string]float64{"ack": 4, "nak": 1, "term": 1} {
		if got := testutil.ToFloat64(met.handled.WithLabelValues("counted", outcome)); got != want {
			t.Errorf("%s: %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.CollectAndCount(met.duration); got != 1 {
		t.Errorf("%d handle-time series, want 1", got)
	}
}

// acks counts the acknowledgements (and naks and terms) sent for the test durable's messages.
func (e *env) acks(t *testing.T) func() int {
	t.Helper()
	var n atomic.Int64
	sub, err := e.nc.Subscribe("$JS.ACK."+streams.ChatStream+"."+testDurable+".>", func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() int { return int(n.Load()) }
}

func TestAckAllSettlesEachChunkWithOneAck(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	acks := e.acks(t)
	last := e.publish(t, 100)
	rec := &recorder{}
	var chunks atomic.Int64
	flush := func(context.Context) error { chunks.Add(1); return nil }
	met := NewMetrics(nil)
	e.startWith(t, Config{Name: "ackall", MaxChunk: 16, Linger: 20 * time.Millisecond, RetryInPlace: true}, rec.handle, Hooks{Flush: flush}, met)
	e.settled(t, last)
	if got := rec.seqs(); !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled %v, want 1..%d once each, in order", got, last)
	}
	if n, c := acks(), int(chunks.Load()); n != c || c >= int(last) {
		t.Fatalf("%d acks for %d chunks of %d messages, want one a chunk", n, c, last)
	}
	if n := testutil.ToFloat64(met.handled.WithLabelValues("ackall", "ack")); n != float64(last) {
		t.Fatalf("counted %v acked, want %d", n, last)
	}
}

func TestAckAllConsumerMustRetryInPlace(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	if _, err := Start(e.js, e.cons, Config{Name: "test"}, (&recorder{}).handle, Hooks{}, zap.NewNop(), nil); err == nil {
		t.Fatal("started an ack-all consumer that would nak")
	}
}

// An ack-all Runner is its consumer's only puller: when it starts, what an earlier puller was
// delivered and never settled (it died) comes again at once, not after the ack wait (longer
// than the test here), and the Runner's acks never settle it unhandled.
func TestAckAllStartHandlesWhatADeadPullerHeld(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	last := e.publish(t, 30)
	natsxtest.PullAndDie(t, e.srv, streams.ChatStream, testDurable, 10)
	rec := &recorder{}
	e.start(t, Config{Name: "test", RetryInPlace: true}, rec.handle, Hooks{})
	e.settled(t, last)
	if got := rec.seqs(); !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled %v, want 1..%d once each, in order", got, last)
	}
}

// Messages an ack-all Runner was delivered and never received (here another puller takes them
// and drops them, as nats.go's Fetch does when it gives up on a pull) are handled all the same:
// the Runner sees the skipped delivery sequence, acknowledges nothing after it, and resets the
// consumer to its ack floor, which delivers them again. Without that, its next ack would settle
// them unhandled.
func TestAckAllRecoversMessagesAPullLost(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	rec := &recorder{}
	met := NewMetrics(nil)
	// Small pulls, so the Runner often has none outstanding and the thief's pulls get messages.
	e.startWith(t, Config{Name: "lossy", MaxChunk: 4, RetryInPlace: true}, rec.handle, Hooks{}, met)
	stolen := natsxtest.Steal(t, e.nc.ConnectedUrl(), nil, streams.ChatStream, testDurable, 3, func() { e.publishMore(t, 20) })
	last := e.publishMore(t, 20) // deliveries after the last theft show its gap
	e.settled(t, last)
	handled := rec.seqs()
	for _, seq := range seqRange(1, last) {
		if !slices.Contains(handled, seq) {
			t.Fatalf("seq %d acknowledged and never handled (stolen %v)", seq, stolen)
		}
	}
	if n := testutil.ToFloat64(met.resets.WithLabelValues("lossy")); n == 0 {
		t.Fatal("no reset counted")
	}
}

// A no-wait pull names no priority group, so a member of one may not gather.
func TestPriorityGroupMemberCannotGather(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := Config{Name: "test", Gather: time.Millisecond, PriorityGroup: "g"}
	if _, err := Start(e.js, e.cons, cfg, (&recorder{}).handle, Hooks{}, zap.NewNop(), nil); err == nil {
		t.Fatal("started a gathering priority group member")
	}
}

// A message that keeps failing holds the ack floor below it, also when the Runner stops and
// the messages after it in its chunk were handled meanwhile; a term acknowledges what came
// before it, and nothing after.
func TestAckAllNeverAcknowledgesPastAFailure(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	last := e.publish(t, 10)
	rec := &recorder{decide: func(d delivery) error {
		switch d.seq {
		case 3:
			return Permanent(errors.New("malformed"))
		case 6:
			return errors.New("transient, for ever")
		}
		return nil
	}}
	e.stopMidRetry(t, rec, int(last), 6, last)
	ci := e.info(t)
	if ci.AckFloor.Stream != 5 {
		t.Fatalf("ack floor %d, want 5: up to the failing message and no further", ci.AckFloor.Stream)
	}
	if ci.NumAckPending+int(ci.NumPending) != int(last)-5 {
		t.Fatalf("%d pending and %d not yet delivered, want the %d from the failing one on", ci.NumAckPending, ci.NumPending, last-5)
	}
}

// A Runner that stops in the middle of retrying a message still handles what it had pulled
// after it, in a later chunk, and acknowledges none of that: one ack of the later chunk would
// settle the unhandled message too.
func TestAckAllAcknowledgesNoLaterChunkAfterAStopMidRetry(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	last := e.publish(t, 10)
	rec := &recorder{decide: func(d delivery) error {
		if d.seq == 2 {
			return errors.New("transient, for ever")
		}
		return nil
	}}
	e.stopMidRetry(t, rec, 5, 2, last) // chunk 1..5 retrying 2, chunk 6..10 pulled
	if ci := e.info(t); ci.AckFloor.Stream != 1 {
		t.Fatalf("ack floor %d, want 1: below the message left unhandled", ci.AckFloor.Stream)
	}
}

// stopMidRetry runs an ack-all Runner in chunks of chunk until it has retried the message at
// failing three times and pulled every message up to last, then stops it with a context that
// runs out while it retries; the messages after the failing one are handled while it stops.
func (e *env) stopMidRetry(t *testing.T, rec *recorder, chunk int, failing, last uint64) {
	t.Helper()
	r, err := Start(e.js, e.cons, Config{Name: "test", MaxChunk: chunk, Linger: 50 * time.Millisecond, RetryInPlace: true, Backoff: []time.Duration{5 * time.Millisecond}},
		rec.handle, Hooks{}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for rec.count(failing) < 3 || r.Pulled() < int64(last) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop: %v", err)
	}
	if rec.count(last) == 0 {
		t.Fatalf("the messages after the failing one were not handled while stopping: %v", rec.seqs())
	}
}

// With AckDelay, chunks of a trickle share acks: one ack settles what was handled within the
// delay, and every message is settled in the end.
func TestAckDelaySettlesATrickleWithFewAcks(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	acks := e.acks(t)
	rec := &recorder{}
	var chunks atomic.Int64
	flush := func(context.Context) error { chunks.Add(1); return nil }
	const delay = 100 * time.Millisecond
	e.start(t, Config{Name: "trickle", MaxChunk: 16, RetryInPlace: true, AckDelay: delay}, rec.handle, Hooks{Flush: flush})
	start := time.Now()
	var last uint64
	for i := range 40 {
		last = e.publishMore(t, 1)
		rec.waitCalls(t, i+1) // a chunk each
	}
	trickle := time.Since(start)
	e.settled(t, last)
	if got := rec.seqs(); !slices.Equal(got, seqRange(1, last)) {
		t.Fatalf("handled %v, want 1..%d once each, in order", got, last)
	}
	// An ack at most once a delay while the trickle lasts, one for each MaxChunk messages, and
	// the last one after it.
	if n, c := acks(), int(chunks.Load()); n >= c || n > int(trickle/delay)+40/16+1 {
		t.Fatalf("%d acks for %d chunks over %s, want at most one each %s", n, c, trickle, delay)
	}
}

// What waits for its ack is acknowledged when the Runner stops, however long the delay.
func TestAckDelayAcksWhatIsOwedWhenStopped(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	rec := &recorder{}
	r, err := Start(e.js, e.cons, Config{Name: "test", RetryInPlace: true, AckDelay: time.Hour}, rec.handle, Hooks{}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	last := e.publish(t, 5)
	rec.waitCalls(t, int(last))
	if ci := e.info(t); ci.AckFloor.Stream != 0 {
		t.Fatalf("ack floor %d before the delay or the stop", ci.AckFloor.Stream)
	}
	if err := r.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
	if ci := e.info(t); ci.AckFloor.Stream != last {
		t.Fatalf("ack floor %d after the stop, want %d", ci.AckFloor.Stream, last)
	}
}

// Once MaxChunk messages wait for their ack, it goes out at once.
func TestAckDelayAcksAtOnceWhenAChunksWorthWaits(t *testing.T) {
	t.Parallel()
	e := newEnvAcking(t, jetstream.AckAllPolicy)
	rec := &recorder{}
	e.start(t, Config{Name: "test", MaxChunk: 4, RetryInPlace: true, AckDelay: time.Hour}, rec.handle, Hooks{})
	last := e.publish(t, 10)
	rec.waitCalls(t, int(last))
	deadline := time.Now().Add(10 * time.Second)
	for ci := e.info(t); ci.AckFloor.Stream < last-3; ci = e.info(t) {
		if time.Now().After(deadline) {
			t.Fatalf("ack floor %d, want at least %d: every full chunk's worth acknowledged", ci.AckFloor.Stream, last-3)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An ack delay needs an ack-all consumer, and chunks that are not gathered over time already.
func TestAckDelayWantsAnAckAllConsumerWithoutLingerOrGather(t *testing.T) {
	t.Parallel()
	all, explicit := newEnvAcking(t, jetstream.AckAllPolicy), newEnv(t)
	for _, c := range []struct {
		e   *env
		cfg Config
	}{
		{explicit, Config{Name: "explicit", AckDelay: time.Millisecond}},
		{all, Config{Name: "linger", RetryInPlace: true, AckDelay: time.Millisecond, Linger: time.Millisecond}},
		{all, Config{Name: "gather", RetryInPlace: true, AckDelay: time.Millisecond, Gather: time.Millisecond}},
	} {
		if r, err := Start(c.e.js, c.e.cons, c.cfg, (&recorder{}).handle, Hooks{}, zap.NewNop(), nil); err == nil {
			_ = r.Stop(context.Background())
			t.Errorf("%s: started", c.cfg.Name)
		}
	}
}
