package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// The catch-up's unit tests: a real embedded JetStream (the CHAT stream the timeline reads past
// the persister's floor) and a real Pebble store (memberships), without a gateway or a socket.

const me = "ume"

type catchUpEnv struct {
	t       testing.TB
	bus     *natsxtest.Bus
	store   store.Store
	consent *consent.Table
	n       int
}

func newCatchUpEnv(t testing.TB) *catchUpEnv {
	return &catchUpEnv{t: t, bus: natsxtest.Start(t), store: pebbletest.Open(t), consent: consent.New()}
}

// publish puts one CHAT event on the stream and returns its seq.
func (e *catchUpEnv) publish(ev streams.ChatEvent) uint64 {
	e.t.Helper()
	e.n++
	ev.MessageID = fmt.Sprintf("m%04d", e.n)
	ev.SentAt = int64(1_700_000_000_000 + e.n)
	if ev.Kind == streams.KindMember {
		ev.Member = &streams.MemberChange{Action: streams.MemberAdded, UserIDs: []string{me}}
	} else {
		ev.SenderDevice, ev.ClientMsgID = "d1", fmt.Sprintf("c%04d", e.n)
	}
	data, err := ev.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	ack, err := e.bus.JS.Publish(e.bus.Ctx, streams.ChatSubject(ev.ConversationID, ev.Kind), data)
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

func (e *catchUpEnv) msg(conv, sender string) uint64 {
	return e.publish(streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv, SenderID: sender, Text: "hi"})
}

func (e *catchUpEnv) member(m store.Member) {
	e.t.Helper()
	m.UserID = me
	if err := e.store.PutMember(e.bus.Ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

// recordingSink keeps every batch written to it; the flush of batch failAt fails, and every
// call after it (0: never).
type recordingSink struct {
	batches [][][]byte
	open    [][]byte // the batch not flushed yet
	failAt  int
	failed  bool
	closed  bool
}

func (s *recordingSink) write(frame []byte) error {
	if s.failed {
		return errSessionEnded
	}
	s.open = append(s.open, slices.Clone(frame)) // the caller reuses frame
	return nil
}

func (s *recordingSink) flush() error {
	switch {
	case s.failed:
		return errSessionEnded
	case len(s.open) == 0:
		return nil
	case len(s.batches)+1 == s.failAt:
		s.failed, s.open = true, nil
		return errSessionEnded
	}
	s.batches, s.open = append(s.batches, s.open), nil
	return nil
}

func (s *recordingSink) close() {
	_ = s.flush()
	s.closed = true
}

// syncFrame is what the tests read of a written frame.
type syncFrame struct {
	Type           string `json:"type"`
	Seq            uint64 `json:"seq"`
	Cursor         uint64 `json:"cursor"`
	ConversationID string `json:"conversation_id"`
}

func (s *recordingSink) frames(t *testing.T) []syncFrame {
	t.Helper()
	var out []syncFrame
	for _, b := range s.batches {
		for _, raw := range b {
			var f syncFrame
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatalf("frame %q: %v", raw, err)
			}
			out = append(out, f)
		}
	}
	return out
}

type gateUnderTest struct {
	mu   sync.Mutex
	gate liveGate
}

// run catches me up from cursor into a fresh sink and gate.
func (e *catchUpEnv) run(cursor *uint64) (uint64, *recordingSink, *gateUnderTest, error) {
	g := &gateUnderTest{gate: newLiveGate()}
	sink := &recordingSink{}
	head, err := e.catchUp(g, sink).run(e.bus.Ctx, cursor)
	if !sink.closed {
		e.t.Error("the catch-up did not close its sink")
	}
	return head, sink, g, err
}

func (e *catchUpEnv) catchUp(g *gateUnderTest, sink frameSink) *catchUp {
	return &catchUp{
		user: me, timeline: timeline.New(e.store, e.bus.JS), members: e.store, consent: e.consent,
		gate: &lockedGate{mu: &g.mu, gate: &g.gate}, sink: sink,
	}
}

// seqs are the seqs of the event frames, and the cursor of the Synced frame that must end them.
func seqs(t *testing.T, fs []syncFrame) (events []uint64, synced uint64) {
	t.Helper()
	if len(fs) == 0 || fs[len(fs)-1].Type != protocol.TypeSynced {
		t.Fatalf("frames %+v do not end with synced", fs)
	}
	for _, f := range fs[:len(fs)-1] {
		if f.Type == protocol.TypeSynced {
			t.Fatalf("synced before the end: %+v", fs)
		}
		events = append(events, f.Seq)
	}
	return events, fs[len(fs)-1].Cursor
}

func ptr(v uint64) *uint64 { return &v }

// TestCatchUpMergesIntervalsInSeqOrder: the replay is every event of every interval of every
// conversation, in one seq order, nothing from the gaps between intervals, before the cursor or
// from a conversation the user never joined; it ends with Synced at the head it returns.
func TestCatchUpMergesIntervalsInSeqOrder(t *testing.T) {
	e := newCatchUpEnv(t)
	var a, b, other []uint64
	for i := range 30 {
		a = append(a, e.msg("ga", "u1"))
		if i%2 == 0 {
			b = append(b, e.msg("gb", "u2"))
		}
		if i%3 == 0 {
			other = append(other, e.msg("gc", "u2"))
		}
	}
	head := e.msg("ga", "u1")
	a = append(a, head)
	// ga: two intervals, (a[2], a[8]] and (a[20], now]; gb: joined at b[3], left at b[10].
	e.member(store.Member{ConversationID: "ga", JoinedSeq: a[20], Earlier: []store.Interval{{JoinedSeq: a[2], LeftSeq: a[8]}}})
	e.member(store.Member{ConversationID: "gb", JoinedSeq: b[3], LeftSeq: b[10]})

	want := func(cursor uint64) []uint64 {
		var w []uint64
		for _, s := range slices.Concat(a, b, other) {
			seen := (s > a[2] && s <= a[8]) || s > a[20]
			if slices.Contains(b, s) {
				seen = s > b[3] && s <= b[10]
			}
			if slices.Contains(other, s) {
				seen = false
			}
			if seen && s > cursor {
				w = append(w, s)
			}
		}
		slices.Sort(w)
		return w
	}
	for _, cursor := range []uint64{0, a[5], b[10], a[25], head} {
		got, sink, _, err := e.run(ptr(cursor))
		if err != nil {
			t.Fatalf("cursor %d: %v", cursor, err)
		}
		events, synced := seqs(t, sink.frames(t))
		if !slices.Equal(events, want(cursor)) || synced != head || got != head {
			t.Errorf("cursor %d: events %v synced %d returned %d, want %v synced and returned %d",
				cursor, events, synced, got, want(cursor), head)
		}
	}
}

// TestCatchUpWithoutCursorOnlySyncs: a device without a cursor gets the head and nothing
// before it; one whose cursor is beyond the head (a rebuilt stream) is told the head.
func TestCatchUpWithoutCursorOnlySyncs(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	e.msg("ga", "u1")
	head := e.msg("ga", "u1")
	for _, cursor := range []*uint64{nil, ptr(head + 100)} {
		got, sink, _, err := e.run(cursor)
		if err != nil {
			t.Fatal(err)
		}
		events, synced := seqs(t, sink.frames(t))
		if len(events) != 0 || synced != head || got != head {
			t.Errorf("cursor %v: events %v synced %d returned %d, want none and %d", cursor, events, synced, got, head)
		}
	}
}

// TestCatchUpThinsByConsent: a blocked sender's messages are not replayed in a group (their
// member events are), and a direct request's messages are held from its recipient until it is
// accepted.
func TestCatchUpThinsByConsent(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	e.member(store.Member{ConversationID: "dab"})
	e.consent.Apply(1, streams.StateEvent{Kind: streams.StateUserBlocked, At: 1, Block: &streams.BlockState{UserID: me, BlockedID: "troll"}})
	e.consent.Apply(2, streams.StateEvent{Kind: streams.StateDirectOpened, At: 2, Direct: &streams.DirectState{
		ConversationID: "dab", UserIDs: []string{me, "asker"}, CreatedBy: "asker", Request: true}})
	friend := e.msg("ga", "u1")
	e.msg("ga", "troll")
	trollJoin := e.publish(streams.ChatEvent{Kind: streams.KindMember, ConversationID: "ga", SenderID: "troll"})
	mine := e.msg("ga", me)
	e.msg("dab", "asker")
	answer := e.msg("dab", me)

	_, sink, _, err := e.run(ptr(0))
	if err != nil {
		t.Fatal(err)
	}
	events, _ := seqs(t, sink.frames(t))
	if want := []uint64{friend, trollJoin, mine, answer}; !slices.Equal(events, want) {
		t.Errorf("before the accept: %v, want %v", events, want)
	}

	e.consent.Apply(3, streams.StateEvent{Kind: streams.StateDirectAccepted, At: 3, Direct: &streams.DirectState{
		ConversationID: "dab", UserIDs: []string{me, "asker"}, By: me}})
	_, sink, _, err = e.run(ptr(mine))
	if err != nil {
		t.Fatal(err)
	}
	if events, _ := seqs(t, sink.frames(t)); len(events) != 2 {
		t.Errorf("after the accept: %v, want the request and the answer", events)
	}
}

// TestCatchUpShowsOnlyOwnHides: another member's hide is not replayed; one's own is (timeline.Sees
// and timeline.View each drop the other's: it fails only without both).
func TestCatchUpShowsOnlyOwnHides(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	m := e.msg("ga", "u1")
	e.publish(streams.ChatEvent{Kind: streams.KindHide, ConversationID: "ga", SenderID: "u2", Target: &streams.Target{Seq: m, MessageID: "m0001"}})
	own := e.publish(streams.ChatEvent{Kind: streams.KindHide, ConversationID: "ga", SenderID: me, Target: &streams.Target{Seq: m, MessageID: "m0001"}})
	_, sink, _, err := e.run(ptr(0))
	if err != nil {
		t.Fatal(err)
	}
	fs := sink.frames(t)
	events, _ := seqs(t, fs)
	if want := []uint64{m, own}; !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
}

// TestCatchUpWritesInBatches: the sink gets the replay catchUpBatch frames at a time, the
// Synced frame in the last batch, and every frame once, in order.
func TestCatchUpWritesInBatches(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	const n = 2*catchUpBatch + 10
	var want []uint64
	for range n {
		want = append(want, e.msg("ga", "u1"))
	}
	_, sink, _, err := e.run(ptr(0))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range sink.batches {
		sizes = append(sizes, len(b))
	}
	if !slices.Equal(sizes, []int{catchUpBatch, catchUpBatch, 11}) {
		t.Errorf("batch sizes %v, want %d, %d, 11", sizes, catchUpBatch, catchUpBatch)
	}
	if events, _ := seqs(t, sink.frames(t)); !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
}

// TestCatchUpReleasesHeldLiveEvents: live events held back while catching up follow the
// Synced frame, except those the catch-up covered (at or below its head); then the gate is
// open.
func TestCatchUpReleasesHeldLiveEvents(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	old := e.msg("ga", "u1")
	head := e.msg("ga", "u1")
	g := &gateUnderTest{gate: newLiveGate()}
	live := func(seq uint64) []byte {
		return fmt.Appendf(nil, `{"type":"message","seq":%d,"conversation_id":"ga"}`, seq)
	}
	for _, seq := range []uint64{old, head, head + 1, head + 2, head + 1} { // the last one redelivered
		if send, full := g.gate.offer("ga", seq, live(seq)); send || full {
			t.Fatalf("offer %d while syncing: send %v full %v", seq, send, full)
		}
	}
	sink := &recordingSink{}
	if _, err := e.catchUp(g, sink).run(e.bus.Ctx, ptr(0)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range sink.frames(t) {
		got = append(got, fmt.Sprintf("%s %d", f.Type, f.Seq+f.Cursor))
	}
	want := []string{fmt.Sprintf("message %d", old), fmt.Sprintf("message %d", head), fmt.Sprintf("synced %d", head),
		fmt.Sprintf("message %d", head+1), fmt.Sprintf("message %d", head+2)}
	if !slices.Equal(got, want) {
		t.Errorf("frames %v, want %v", got, want)
	}
	// Synced is on the wire before anything released: it ends its batch.
	for i, b := range sink.batches {
		for j, raw := range b {
			if strings.Contains(string(raw), `"synced"`) && j != len(b)-1 {
				t.Errorf("synced is frame %d of the %d in batch %d", j+1, len(b), i)
			}
		}
	}
	if send, _ := g.gate.offer("ga", head+3, live(head+3)); !send {
		t.Error("the gate is still closed after the catch-up")
	}
	if send, _ := g.gate.offer("ga", head+2, live(head+2)); send {
		t.Error("a released event is sent again live")
	}
}

// TestCatchUpStopsWhenTheSinkFails: a socket gone mid-replay ends the catch-up with
// errSessionEnded, and nothing more is written.
func TestCatchUpStopsWhenTheSinkFails(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	for range 3 * catchUpBatch {
		e.msg("ga", "u1")
	}
	g := &gateUnderTest{gate: newLiveGate()}
	sink := &recordingSink{failAt: 2}
	if _, err := e.catchUp(g, sink).run(e.bus.Ctx, ptr(0)); !errors.Is(err, errSessionEnded) {
		t.Fatalf("run: %v, want errSessionEnded", err)
	}
	if len(sink.batches) != 1 || !sink.closed {
		t.Errorf("%d batches written (sink closed: %v), want 1 and closed", len(sink.batches), sink.closed)
	}
}

// TestCatchUpFailsWithoutTheStream: a timeline that cannot be read is an error, not an empty
// catch-up.
func TestCatchUpFailsWithoutTheStream(t *testing.T) {
	e := newCatchUpEnv(t)
	if err := e.bus.JS.DeleteStream(e.bus.Ctx, streams.ChatStream); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.bus.Ctx)
	defer cancel()
	g := &gateUnderTest{gate: newLiveGate()}
	sink := &recordingSink{}
	if _, err := e.catchUp(g, sink).run(ctx, ptr(0)); err == nil {
		t.Fatal("catch-up without a CHAT stream succeeded")
	}
	if len(sink.batches) != 0 || !sink.closed {
		t.Errorf("wrote %d batches (sink closed: %v), want none and closed", len(sink.batches), sink.closed)
	}
}

// countingSink counts the frames and bytes a catch-up writes, keeping none.
type countingSink struct{ frames, bytes int }

func (s *countingSink) write(frame []byte) error { s.frames++; s.bytes += len(frame); return nil }
func (s *countingSink) flush() error             { return nil }
func (s *countingSink) close()                   {}

// stored publishes n messages of conv with text, puts each in the store, and moves the
// persister's ack floor past them: the timeline reads them from the store, not the stream.
func (e *catchUpEnv) stored(conv string, n int, text string) {
	e.t.Helper()
	for range n {
		ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv, SenderID: "u2", Text: text}
		seq := e.publish(ev)
		ev.MessageID, ev.SentAt, ev.SenderDevice, ev.ClientMsgID = fmt.Sprintf("m%04d", e.n), int64(1_700_000_000_000+e.n), "d1", fmt.Sprintf("c%04d", e.n)
		if _, _, err := e.store.InsertMessage(e.bus.Ctx, timeline.FromEvent(seq, ev)); err != nil {
			e.t.Fatal(err)
		}
	}
	cons, err := e.bus.JS.Consumer(e.bus.Ctx, streams.ChatStream, streams.PersisterConsumer)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := cons.Info(e.bus.Ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	head := info.Delivered.Stream + info.NumPending
	for acked := info.AckFloor.Stream; acked < head; {
		batch, err := cons.Fetch(int(min(1000, head-acked))) // never more than are there: Fetch would wait for them
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				e.t.Fatal(err)
			}
			acked++
		}
	}
	for info, _ := cons.Info(e.bus.Ctx); info.AckFloor.Stream < head; info, _ = cons.Info(e.bus.Ctx) {
		time.Sleep(10 * time.Millisecond)
	}
}

// pagesFailing is the env's store with every page read after the first failing.
type pagesFailing struct {
	*pebble.Store
	reads atomic.Int32
}

var errPageRead = errors.New("injected: page read failed")

func (s *pagesFailing) Messages(ctx context.Context, conv string, p store.Page) ([]store.Message, error) {
	return s.AppendMessages(ctx, nil, conv, p)
}

func (s *pagesFailing) AppendMessages(ctx context.Context, dst []store.Message, conv string, p store.Page) ([]store.Message, error) {
	if s.reads.Add(1) > 1 {
		return dst, errPageRead
	}
	return s.Store.AppendMessages(ctx, dst, conv, p)
}

// TestCatchUpFailsWhenAStorePageFails: the store failing after the merge has handed on batches
// of the conversation is an error of the catch-up, never a Synced that claims what was not read
// (sync never skips).
func TestCatchUpFailsWhenAStorePageFails(t *testing.T) {
	e := newCatchUpEnv(t)
	e.member(store.Member{ConversationID: "ga"})
	e.stored("ga", store.MaxPageLimit+10, "hi")
	failing := &pagesFailing{Store: e.store.(*pebble.Store)}
	g := &gateUnderTest{gate: newLiveGate()}
	sink := &recordingSink{}
	c := e.catchUp(g, sink)
	c.timeline = timeline.New(failing, e.bus.JS)
	if _, err := c.run(e.bus.Ctx, ptr(0)); !errors.Is(err, errPageRead) {
		t.Fatalf("run: %v, want the page read's error", err)
	}
	fs := sink.frames(t)
	if len(fs) < mergeBatch {
		t.Fatalf("%d frames written before the failure, want the first page's batches (so the failure came mid-range)", len(fs))
	}
	for _, f := range fs {
		if f.Type == protocol.TypeSynced {
			t.Fatalf("synced written after %d of %d events, though the rest could not be read", len(fs)-1, store.MaxPageLimit+10)
		}
	}
}

// BenchmarkCatchUp is the server's side of `natter bench peers`' catch-up without the socket:
// a device catches up on 10,000 messages of one conversation (100 characters of text each), all
// in the store with the persister's ack floor past them, into a sink that only counts.
func BenchmarkCatchUp(b *testing.B) {
	const n = 10_000
	e := newCatchUpEnv(b)
	e.member(store.Member{ConversationID: "c1"})
	e.stored("c1", n, strings.Repeat("lorem ipsum ", 9)[:100])
	tl := timeline.New(e.store, e.bus.JS)
	for b.Loop() {
		g := &gateUnderTest{gate: newLiveGate()}
		sink := &countingSink{}
		c := &catchUp{user: me, timeline: tl, members: e.store, consent: e.consent, gate: &lockedGate{mu: &g.mu, gate: &g.gate}, sink: sink}
		if _, err := c.run(e.bus.Ctx, ptr(0)); err != nil {
			b.Fatal(err)
		}
		if sink.frames != n+1 {
			b.Fatalf("%d frames, want %d and synced", sink.frames, n)
		}
	}
}
