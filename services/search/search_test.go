package search

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// Bleve starts its analysis workers when its package loads; they live as long as the process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(natsxtest.IgnoreServerGoroutines(), goleak.IgnoreTopFunction("github.com/blevesearch/bleve_index_api.AnalysisWorker"))...)
}

type env struct {
	ctx context.Context
	bus *natsxtest.Bus
	dir string
	n   int
}

// newEnv starts NATS with natter's definitions; redeliveries of the search consumer come after
// ackWait.
func newEnv(t *testing.T, ackWait time.Duration) *env {
	t.Helper()
	opts := streams.DefaultOptions()
	opts.AckWait = ackWait
	te := natsxtest.StartWith(t, opts)
	return &env{ctx: te.Ctx, bus: te, dir: t.TempDir() + "/index"}
}

// publish sends a CHAT event of kind with text and returns its seq.
func (e *env) publish(t *testing.T, conv, kind, text string) uint64 {
	t.Helper()
	e.n++
	data, err := streams.ChatEvent{Kind: kind, ConversationID: conv, MessageID: fmt.Sprintf("m%06d", e.n),
		SenderID: "u1", Text: text, SentAt: 1_700_000_000_000 + int64(e.n)}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.bus.JS.Publish(e.ctx, streams.ChatSubject(conv, kind), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// running is a search service on a connection of its own.
type running struct {
	svc *Service
	srv *Server
	nc  *nats.Conn
}

func (e *env) start(t *testing.T, chunk int) *running {
	t.Helper()
	nc, err := natsx.Connect(e.bus.Server.ClientURL(), "search-test", nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	met, _ := NewMetrics(nil)
	cfg := DefaultConfig()
	cfg.Dir, cfg.Chunk, cfg.LagEvery = e.dir, chunk, 50*time.Millisecond
	svc, err := New(cfg, Deps{Log: zap.NewNop(), JS: js, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := Serve(nc, svc, cfg, zap.NewNop(), met)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{svc: svc, srv: srv, nc: nc}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Stop(ctx); err != nil {
		t.Errorf("stop server: %v", err)
	}
	_ = r.svc.Stop(ctx) // after a kill its acks and pulls fail; that is the point
	r.nc.Close()
	r.svc = nil
}

// kill cuts the service off the bus at once, as a crash would: no drain, no acks after this
// point; what it committed to the index stays there.
func (r *running) kill(t *testing.T) {
	r.nc.Close()
	r.stop(t)
}

// restartHasAll starts search again and waits until it has indexed every event up to last:
// n documents, each with the word "common".
func (e *env) restartHasAll(t *testing.T, last uint64, n int) *wire.Client {
	t.Helper()
	e.start(t, 512)
	c := wire.NewClient(e.bus.NC, 5*time.Second)
	if st := e.waitIndexed(t, c, last); st.Documents != uint64(n) {
		t.Fatalf("%d documents after the restart, want %d", st.Documents, n)
	}
	if h := hitsFor(t, c, "c", "common"); len(h) != n {
		t.Fatalf("%d hits for a word in every message, want %d", len(h), n)
	}
	return c
}

// waitIndexed waits until the consumer's ack floor reaches seq.
func (e *env) waitIndexed(t *testing.T, c *wire.Client, seq uint64) wire.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(e.ctx)
		if err == nil && st.IndexedSeq >= seq && st.Pending == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("index not caught up to %d: %+v, %v", seq, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hitsFor is every hit of q in the conversation, all pages.
func hitsFor(t *testing.T, c *wire.Client, conv, q string) []wire.Hit {
	t.Helper()
	var out []wire.Hit
	query := wire.Query{Text: q, Scopes: []wire.Scope{{ConversationID: conv}}, Limit: wire.MaxLimit}
	for {
		res, err := c.Search(context.Background(), query)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Hits...)
		if res.NextCursor == "" {
			return out
		}
		query.Cursor = res.NextCursor
	}
}

func TestIndexesMessagesOnlyAndAnswersOverNATS(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	e.publish(t, "c1", streams.KindMsg, "hello world")
	e.publish(t, "c1", streams.KindMember, "")
	e.publish(t, "c1", streams.KindRead, "")
	last := e.publish(t, "c2", streams.KindMsg, "hello 안녕하세요")
	e.start(t, 512)
	c := wire.NewClient(e.bus.NC, 5*time.Second)
	st := e.waitIndexed(t, c, last)
	if st.Documents != 2 || st.HeadSeq != last {
		t.Errorf("status %+v, want 2 documents and head %d", st, last)
	}
	if h := hitsFor(t, c, "c1", "hello"); len(h) != 1 || h[0].Seq != 1 || h[0].MessageID != "m000001" || h[0].Snippet != "<mark>hello</mark> world" {
		t.Errorf("c1 hello: %+v", h)
	}
	if h := hitsFor(t, c, "c2", "안녕"); len(h) != 1 || h[0].Seq != last {
		t.Errorf("c2 안녕: %+v", h)
	}
	_, err := c.Search(e.ctx, wire.Query{Text: "x", Scopes: []wire.Scope{{ConversationID: "c1"}}, Limit: 1, Cursor: "bad"})
	if err == nil || !errorsIsBadQuery(err) {
		t.Errorf("bad cursor: %v", err)
	}
}

// revise publishes an edit (text) or delete of the message at target and returns its seq.
func (e *env) revise(t *testing.T, conv, kind string, target uint64, text string) uint64 {
	t.Helper()
	e.n++
	data, err := streams.ChatEvent{Kind: kind, ConversationID: conv, MessageID: fmt.Sprintf("m%06d", e.n),
		SenderID: "u1", Text: text, SentAt: 1_700_000_000_000 + int64(e.n),
		Target: &streams.Target{Seq: target, MessageID: fmt.Sprintf("m%06d", target)}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.bus.JS.Publish(e.ctx, streams.ChatSubject(conv, kind), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// TestEditsReplaceAndDeletesRemove: an edit replaces its message's text in the index, a delete
// takes the text out for good (an edit published after it changes nothing), whether they are
// committed in one batch with their message (chunk 512) or each in its own (chunk 1).
func TestEditsReplaceAndDeletesRemove(t *testing.T) {
	for _, chunk := range []int{512, 1} {
		t.Run(fmt.Sprint("chunk ", chunk), func(t *testing.T) {
			e := newEnv(t, 30*time.Second)
			first := e.publish(t, "c1", streams.KindMsg, "hello world")
			second := e.publish(t, "c1", streams.KindMsg, "secret plan")
			e.revise(t, "c1", streams.KindEdit, first, "goodbye world")
			e.revise(t, "c1", streams.KindDelete, second, "")
			e.revise(t, "c1", streams.KindEdit, second, "secret again") // raced the delete: no effect
			e.revise(t, "c1", streams.KindHide, first, "")
			last := e.publish(t, "c1", streams.KindMsg, "plan b")
			e.start(t, chunk)
			c := wire.NewClient(e.bus.NC, 5*time.Second)
			st := e.waitIndexed(t, c, last)
			if st.Documents != 3 { // the edited message, the tombstone, plan b
				t.Errorf("status %+v, want 3 documents", st)
			}
			if h := hitsFor(t, c, "c1", "hello"); len(h) != 0 {
				t.Errorf("the text before the edit is still found: %+v", h)
			}
			if h := hitsFor(t, c, "c1", "goodbye"); len(h) != 1 || h[0].Seq != first || h[0].SentAt != 1_700_000_000_001 {
				t.Errorf("edited text: %+v", h)
			}
			if h := hitsFor(t, c, "c1", "secret"); len(h) != 0 {
				t.Errorf("deleted text found: %+v", h)
			}
			if h := hitsFor(t, c, "c1", "plan"); len(h) != 1 || h[0].Seq != last {
				t.Errorf("plan: %+v", h)
			}
		})
	}
}

// TestHardStopMidStreamLosesAndDoublesNothing cuts the search consumer off the bus in the middle
// of a backlog (its connection closed at once, acknowledgements lost; the process itself is
// not killed: test/e2e does that with the binary), restarts it on the same index, and checks
// that every message is indexed exactly once.
func TestHardStopMidStreamLosesAndDoublesNothing(t *testing.T) {
	e := newEnv(t, time.Second)
	const n = 3000
	var last uint64
	for i := range n {
		last = e.publish(t, "c", streams.KindMsg, fmt.Sprintf("tok%d common", i))
	}
	first := e.start(t, 50)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if docs, _ := first.svc.Index().Count(); docs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing indexed")
		}
		time.Sleep(time.Millisecond)
	}
	first.kill(t)
	idx, err := OpenBleve(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := idx.Count()
	_ = idx.Close()
	if docs == 0 || docs >= n {
		t.Fatalf("killed with %d of %d messages indexed: not mid-stream", docs, n)
	}
	t.Logf("killed with %d of %d messages indexed", docs, n)

	c := e.restartHasAll(t, last, n)
	for i := 0; i < n; i += 97 {
		if h := hitsFor(t, c, "c", fmt.Sprintf("tok%d", i)); len(h) != 1 || h[0].Seq != uint64(i+1) {
			t.Fatalf("tok%d: %+v", i, h)
		}
	}
}

// TestARestartIndexesWhatACrashedRunHeldFirst: a run pulled ten events and died before it indexed
// or acknowledged them (a raw pull stands in for it). The next run resets the consumer to its
// ack floor before it pulls, so those ten come again at once: with an ack wait longer than the
// test they could not come back otherwise, and the new run's ack of the later events, which
// acknowledges every earlier one, would settle them unindexed.
func TestARestartIndexesWhatACrashedRunHeldFirst(t *testing.T) {
	e := newEnv(t, 5*time.Minute)
	const n = 30
	var last uint64
	for i := range n {
		last = e.publish(t, "c", streams.KindMsg, fmt.Sprintf("tok%d common", i))
	}
	natsxtest.PullAndDie(t, e.bus.Server, streams.ChatStream, streams.SearchConsumer, 10)

	e.restartHasAll(t, last, n)
}

// Deliveries search never received (another puller takes them and drops them, as a pull that
// gave up on what the server sent does) are indexed all the same: its consumer acks all, and
// search resets it rather than acknowledge past them. The ack wait outlasts the test, so they
// cannot come back any other way.
func TestEventsAPullLostAreIndexed(t *testing.T) {
	e := newEnv(t, 5*time.Minute)
	e.start(t, 4) // small chunks: pauses between pulls, for the thief
	n := 0
	publish := func() {
		for range 20 {
			e.publish(t, "c", streams.KindMsg, fmt.Sprintf("tok%d common", n))
			n++
		}
	}
	stolen := natsxtest.Steal(t, "", e.bus.Server, streams.ChatStream, streams.SearchConsumer, 3, publish)
	publish() // deliveries after the last theft show its gap
	c := wire.NewClient(e.bus.NC, 5*time.Second)
	if st := e.waitIndexed(t, c, uint64(n)); st.Documents != uint64(n) {
		t.Fatalf("%d documents, want %d (stolen %v)", st.Documents, n, stolen)
	}
	if h := hitsFor(t, c, "c", "common"); len(h) != n {
		t.Fatalf("%d hits for a word in every message, want %d (stolen %v)", len(h), n, stolen)
	}
}

func TestRebuildReplaysAndAnswersMeanwhile(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	const n = 400
	var last uint64
	for i := range n {
		last = e.publish(t, fmt.Sprintf("c%d", i%4), streams.KindMsg, fmt.Sprintf("word%d shared", i))
	}
	e.start(t, 20)
	c := wire.NewClient(e.bus.NC, 5*time.Second)
	e.waitIndexed(t, c, last)
	st, err := c.Rebuild(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.RebuildFrom != 1 || st.RebuildTo != last {
		t.Errorf("rebuild of %d..%d, want 1..%d", st.RebuildFrom, st.RebuildTo, last)
	}
	if st.Documents >= n {
		t.Errorf("%d documents right after the drop", st.Documents)
	}
	// Queries keep being answered while the replay runs.
	for {
		if _, err := c.Search(e.ctx, wire.Query{Text: "shared", Scopes: []wire.Scope{{ConversationID: "c1"}}, Limit: 10}); err != nil {
			t.Fatalf("query during rebuild: %v", err)
		}
		if st, err = c.Status(e.ctx); err != nil {
			t.Fatal(err)
		}
		if st.IndexedSeq >= last && st.Pending == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.Documents != n {
		t.Errorf("%d documents after the rebuild, want %d", st.Documents, n)
	}
	if h := hitsFor(t, c, "c3", "shared"); len(h) != n/4 {
		t.Errorf("%d hits in c3 after the rebuild, want %d", len(h), n/4)
	}
}

func TestNoSearchProcessIsUnavailable(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	c := wire.NewClient(e.bus.NC, time.Second)
	_, err := c.Search(e.ctx, wire.Query{Text: "x", Scopes: []wire.Scope{{ConversationID: "c"}}, Limit: 1})
	if !errorsIsUnavailable(err) {
		t.Errorf("search without a search process: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Dir = t.TempDir()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config refused: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"no dir":          func(c *Config) { c.Dir = "" },
		"chunk 0":         func(c *Config) { c.Chunk = 0 },
		"negative linger": func(c *Config) { c.Linger = -time.Second },
		"negative gather": func(c *Config) { c.Gather = -time.Millisecond },
		"gather over 1s":  func(c *Config) { c.Gather = 2 * time.Second },
		"no batch bytes":  func(c *Config) { c.BatchBytes = 0 },
		"no query worker": func(c *Config) { c.QueryWorkers = 0 },
		"no lag refresh":  func(c *Config) { c.LagEvery = 0 },
	} {
		c := ok
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
