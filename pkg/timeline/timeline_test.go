package timeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

// The Reader starts no goroutines, but pebble and the embedded server do: check they all stop.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

type env struct {
	ctx context.Context
	nc  *nats.Conn
	js  jetstream.JetStream
	st  jetstream.Stream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	te := natsxtest.Start(t)
	return &env{ctx: te.Ctx, nc: te.NC, js: te.JS, st: te.Stream(t, streams.ChatStream)}
}

// event is one published CHAT event and, for timeline kinds, the store.Message it stands for,
// built here independently of FromStream.
type event struct {
	seq  uint64
	kind string
	msg  store.Message
}

func (e *env) publish(t *testing.T, conv, kind string, i int) event {
	t.Helper()
	sentAt := int64(1_700_000_000_000 + i*1001)
	ev := streams.ChatEvent{
		Kind: kind, ConversationID: conv, MessageID: fmt.Sprintf("m%04d", i), SenderID: fmt.Sprintf("u%d", i%3),
		SentAt: sentAt,
	}
	var member []byte
	switch kind {
	case streams.KindMember:
		ev.Member = &streams.MemberChange{Action: streams.MemberAdded, UserIDs: []string{fmt.Sprintf("n%d", i)}}
		member, _ = json.Marshal(ev.Member)
	default:
		ev.SenderDevice = "d1"
		ev.ClientMsgID = fmt.Sprintf("cm%04d", i)
		ev.Text = fmt.Sprintf("text %d in %s", i, conv)
	}
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.Publish(e.ctx, streams.ChatSubject(conv, kind), data)
	if err != nil {
		t.Fatal(err)
	}
	return event{seq: ack.Sequence, kind: kind, msg: store.Message{
		ConversationID: conv, Seq: ack.Sequence, ID: ev.MessageID, Kind: kind, SenderID: ev.SenderID,
		SenderDevice: ev.SenderDevice, ClientMsgID: ev.ClientMsgID, Text: ev.Text, Member: member,
		SentAt: time.UnixMilli(sentAt).UTC(),
	}}
}

func timelineKind(kind string) bool { return kind == streams.KindMsg || kind == streams.KindMember }

// ackUpTo acks the persister consumer's messages 1..n (fetching n), skipping the seqs in skip.
func (e *env) ackUpTo(t *testing.T, n int, skip ...uint64) {
	t.Helper()
	cons, err := e.st.Consumer(e.ctx, streams.PersisterConsumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if contains(skip, meta.Sequence.Stream) {
			continue
		}
		if err := m.DoubleAck(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got != n {
		t.Fatalf("fetched %d of %d", got, n)
	}
}

func contains(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// show renders messages with every field, so that comparisons are exact and failures readable.
func show(ms []store.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s #%d id=%s %s from=%s/%s cm=%s %q member=%s at=%d]\n", m.ConversationID, m.Seq, m.ID,
			m.Kind, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Text, m.Member, m.SentAt.UnixMilli())
	}
	return b.String()
}

func seqsOf(ms []store.Message) []uint64 {
	out := make([]uint64, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func TestMarksEmptyStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m, err := New(pebbletest.Open(t), e.js).Marks(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m != (Marks{}) {
		t.Fatalf("marks of an empty stream %+v", m)
	}
}

// DuplicateWindow is CHAT's window as the stream is configured now: a change reaches a reader
// once the stream info it holds is older than storedTTL, through DuplicateWindow itself or
// through Marks, which reads the same info; within storedTTL the known value is shared.
func TestDuplicateWindowFollowsTheStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	setWindow := func(d time.Duration) {
		t.Helper()
		cfg := e.st.CachedInfo().Config
		cfg.Duplicates = d
		if _, err := e.js.UpdateStream(e.ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	window := func(r *Reader, want time.Duration, when string) {
		t.Helper()
		if got, err := r.DuplicateWindow(e.ctx); err != nil || got != want {
			t.Fatalf("%s: window %s, %v; want %s", when, got, err, want)
		}
	}
	r := New(pebbletest.Open(t), e.js)
	window(r, streams.DefaultOptions().DuplicateWindow, "as defined")
	setWindow(40 * time.Second)
	window(r, streams.DefaultOptions().DuplicateWindow, "changed within storedTTL: the known value")

	r.storedTTL = 0 // every call reads the stream info afresh
	window(r, 40*time.Second, "changed")
	setWindow(3 * time.Second)
	if _, err := r.Marks(e.ctx); err != nil {
		t.Fatal(err)
	}
	r.storedTTL = time.Hour // what Marks read is what DuplicateWindow answers now
	window(r, 3*time.Second, "read by Marks")
}

func TestMarksWithoutPersisterConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.js.DeleteConsumer(e.ctx, streams.ChatStream, streams.PersisterConsumer); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		e.publish(t, "c1", streams.KindMsg, i)
	}
	r := New(pebbletest.Open(t), e.js)
	r.storedTTL = 0 // every Marks reads the ack floor afresh
	m, err := r.Marks(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m != (Marks{Stored: 0, Head: 5}) {
		t.Fatalf("marks %+v, want {0 5}", m)
	}
	// The stream no longer holds 1 and 2: they can only be in the store.
	if err := e.st.Purge(e.ctx, jetstream.WithPurgeSequence(3)); err != nil {
		t.Fatal(err)
	}
	if m, err = r.Marks(e.ctx); err != nil {
		t.Fatal(err)
	}
	if m != (Marks{Stored: 2, Head: 5}) {
		t.Fatalf("marks after purge below 3: %+v, want {2 5}", m)
	}
}

// A floor read is reused while it is near the head; one more than longTail events below it is
// read again once longTailRefresh old, so that a catch-up just after a burst does not read the
// burst from the stream one event at a time.
func TestAFloorFarBelowTheHeadIsReadAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 8; i++ {
		e.publish(t, "c1", streams.KindMsg, i)
	}
	r := New(pebbletest.Open(t), e.js)
	r.storedTTL = time.Hour
	marks := func(want Marks, what string) {
		t.Helper()
		m, err := r.Marks(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m != want {
			t.Fatalf("%s: marks %+v, want %+v", what, m, want)
		}
	}
	marks(Marks{Stored: 0, Head: 8}, "before any ack")
	e.ackUpTo(t, 8)
	time.Sleep(2 * longTailRefresh)
	marks(Marks{Stored: 0, Head: 8}, "acked, the head near the floor read: reused")
	for i := 8; i < 8+longTail+1; i++ {
		e.publish(t, "c1", streams.KindMsg, i)
	}
	time.Sleep(2 * longTailRefresh)
	marks(Marks{Stored: 8, Head: 8 + longTail + 1}, "the head more than longTail above it: read again")
}

func TestMarksFollowPersisterAckFloor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 8; i++ {
		e.publish(t, "c1", streams.KindMsg, i)
	}
	r := New(pebbletest.Open(t), e.js)
	r.storedTTL = 0 // every Marks reads the ack floor afresh
	m, err := r.Marks(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m != (Marks{Stored: 0, Head: 8}) {
		t.Fatalf("before any ack: %+v, want {0 8}", m)
	}
	// Acks 1, 2, 4, 5: the floor is 2, not 5.
	e.ackUpTo(t, 5, 3)
	if m, err = r.Marks(e.ctx); err != nil {
		t.Fatal(err)
	}
	if m != (Marks{Stored: 2, Head: 8}) {
		t.Fatalf("acked 1,2,4,5: %+v, want {2 8}", m)
	}
	// The stream dropping 1..6 lifts the mark to 6 whatever the floor.
	if err := e.st.Purge(e.ctx, jetstream.WithPurgeSequence(7)); err != nil {
		t.Fatal(err)
	}
	if m, err = r.Marks(e.ctx); err != nil {
		t.Fatal(err)
	}
	if m != (Marks{Stored: 6, Head: 8}) {
		t.Fatalf("after purge below 7: %+v, want {6 8}", m)
	}
}

// corpus publishes a conversation c1 interleaved with c2 and c3, with receipts and edits of c1 in
// between, acks the persister up to stored, and returns every event and the two stores: partial
// (what the persister wrote: everything up to stored, plus extra) and full (the whole timeline).
type corpus struct {
	events  []event
	c1      []store.Message // c1's timeline, oldest first
	partial store.Store
	full    store.Store
	head    uint64
	stored  uint64
}

func buildCorpus(t *testing.T, e *env, n int, stored uint64, extra ...uint64) corpus {
	t.Helper()
	c := corpus{partial: pebbletest.Open(t), full: pebbletest.Open(t), stored: stored}
	for i := 0; i < n; i++ {
		conv, kind := "c1", streams.KindMsg
		switch {
		case i%7 == 3:
			kind = streams.KindRead
		case i%11 == 5:
			kind = streams.KindDelivered
		case i%13 == 6:
			kind = "future" // a kind this version does not know: not part of the timeline
		case i%9 == 4:
			kind = streams.KindMember
		case i%3 == 1:
			conv = "c2"
		case i%4 == 2:
			conv = "c3"
		}
		ev := e.publish(t, conv, kind, i)
		c.events = append(c.events, ev)
		if !timelineKind(kind) {
			continue
		}
		if conv == "c1" {
			c.c1 = append(c.c1, ev.msg)
		}
		for _, s := range []store.Store{c.full, c.partial} {
			if s == c.partial && ev.seq > stored && !contains(extra, ev.seq) {
				continue
			}
			if _, ins, err := s.InsertMessage(e.ctx, ev.msg); err != nil || !ins {
				t.Fatalf("insert %d: inserted %v, %v", ev.seq, ins, err)
			}
		}
	}
	c.head = c.events[len(c.events)-1].seq
	e.ackUpTo(t, int(stored))
	return c
}

func (c corpus) want(from, to uint64) []store.Message {
	var out []store.Message
	for _, m := range c.c1 {
		if m.Seq > from && m.Seq <= to {
			out = append(out, m)
		}
	}
	return out
}

func TestRangeMergesStoreAndStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := buildCorpus(t, e, 80, 40)
	r := New(c.partial, e.js)
	marks, err := r.Marks(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if marks != (Marks{Stored: 40, Head: 80}) {
		t.Fatalf("marks %+v", marks)
	}
	if len(c.want(0, 40)) < 10 || len(c.want(40, 80)) < 10 {
		t.Fatalf("corpus too thin: %d stored, %d only in the stream", len(c.want(0, 40)), len(c.want(40, 80)))
	}
	points := []uint64{0, 1, 2, 3, 9, 17, 38, 39, 40, 41, 42, 43, 55, 78, 79, 80}
	for _, from := range points {
		for _, to := range points {
			if to < from {
				continue
			}
			var got []store.Message
			err := r.Range(e.ctx, marks, "c1", from, to, func(m store.Message) error {
				got = append(got, m)
				return nil
			})
			if err != nil {
				t.Fatalf("range (%d, %d]: %v", from, to, err)
			}
			if g, w := show(got), show(c.want(from, to)); g != w {
				t.Fatalf("range (%d, %d]:\n got %v\nwant %v\n%s---\n%s", from, to, seqsOf(got), seqsOf(c.want(from, to)), g, w)
			}
		}
	}
	if err := r.Range(e.ctx, marks, "c1", 0, 81, func(store.Message) error { return nil }); err == nil {
		t.Fatal("range beyond head accepted")
	}
	// A conversation with no events at all.
	if err := r.Range(e.ctx, marks, "nobody", 0, 80, func(m store.Message) error {
		return fmt.Errorf("event %d of an empty conversation", m.Seq)
	}); err != nil {
		t.Fatal(err)
	}
	// fn's error stops the walk and comes back unchanged, from either half.
	stop := errors.New("stop")
	for _, at := range []uint64{c.want(0, 40)[2].Seq, c.want(40, 80)[2].Seq} {
		calls := 0
		err := r.Range(e.ctx, marks, "c1", 0, 80, func(m store.Message) error {
			calls++
			if m.Seq == at {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("stop at %d: %v", at, err)
		}
		if want := len(c.want(0, at)); calls != want {
			t.Fatalf("stop at %d: %d calls, want %d", at, calls, want)
		}
	}
}

// The persister writes with several workers, so the store can hold an event above the ack floor
// while an earlier one is not written yet. Range must still return every event: "sync never skips".
func TestRangeDoesNotSkipEventsMissingAboveAckFloor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 6; i++ {
		e.publish(t, "c1", streams.KindMsg, i)
	}
	st := pebbletest.Open(t)
	// Stream: 1..6. Persister acked 1, 2 (floor 2) and has written 1, 2 and 4, not yet 3.
	for seq := uint64(1); seq <= 6; seq++ {
		raw, err := e.st.GetMsg(e.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		m, ok, err := FromStream(raw.Subject, raw.Sequence, raw.Data)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if seq <= 2 || seq == 4 {
			if _, _, err := st.InsertMessage(e.ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.ackUpTo(t, 2)
	r := New(st, e.js)
	marks, err := r.Marks(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if marks != (Marks{Stored: 2, Head: 6}) {
		t.Fatalf("marks %+v", marks)
	}
	var got []uint64
	if err := r.Range(e.ctx, marks, "c1", 0, 6, func(m store.Message) error {
		got = append(got, m.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[1 2 3 4 5 6]" {
		t.Fatalf("range (0, 6] with 3 not yet stored but 4 stored: got %v, want [1 2 3 4 5 6]", got)
	}
	// Page (history) already reads such a store correctly.
	page, err := r.Page(e.ctx, "c1", store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqsOf(page)) != "[6 5 4 3 2 1]" {
		t.Fatalf("page %v", seqsOf(page))
	}
}

func TestPageMatchesCaughtUpStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The persister ran ahead of its ack floor on two events (48 and 57 are c1 events in the corpus).
	c := buildCorpus(t, e, 70, 35, 48, 57)
	for _, s := range []uint64{48, 57} {
		if _, err := c.partial.MessageByID(e.ctx, "c1", fmt.Sprintf("m%04d", s-1)); err != nil {
			t.Fatalf("extra event %d is not a stored c1 event: %v", s, err)
		}
	}
	r := New(c.partial, e.js)
	var pages []store.Page
	for _, limit := range []int{1, 2, 5, 7, 50, 200} {
		pages = append(pages, store.Page{Limit: limit}, store.Page{Oldest: true, Limit: limit})
	}
	pages = append(pages, store.Page{}) // default limit
	for _, seq := range []uint64{0, 1, 2, 5, 11, 20, 33, 34, 35, 36, 37, 40, 47, 48, 49, 56, 57, 58, 66, 69, 70, 71} {
		for _, limit := range []int{1, 4} {
			if seq > 0 {
				pages = append(pages, store.Page{Before: seq, Limit: limit})
			}
			pages = append(pages, store.Page{After: seq, Limit: limit}, store.Page{After: seq, Oldest: true, Limit: limit})
		}
	}
	for _, p := range pages {
		got, err := r.Page(e.ctx, "c1", p)
		if err != nil {
			t.Fatalf("page %+v: %v", p, err)
		}
		want, err := c.full.Messages(e.ctx, "c1", p)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := show(got), show(want); g != w {
			t.Fatalf("page %+v:\n got %v\nwant %v\n%s---\n%s", p, seqsOf(got), seqsOf(want), g, w)
		}
	}
	for _, bad := range []store.Page{{Before: 5, After: 2}, {Limit: -1}, {Limit: store.MaxPageLimit + 1}, {Before: 3, Oldest: true}} {
		if _, err := r.Page(e.ctx, "c1", bad); !errors.Is(err, store.ErrBadPage) {
			t.Fatalf("page %+v: %v, want ErrBadPage", bad, err)
		}
	}
}

func TestAroundMatchesCaughtUpStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := buildCorpus(t, e, 60, 30)
	r := New(c.partial, e.js)
	for _, seq := range []uint64{0, 1, 2, 3, 12, 28, 29, 30, 31, 32, 33, 45, 58, 59, 60, 61} {
		for _, limit := range []int{1, 2, 5, 10} {
			got, err := r.Around(e.ctx, "c1", seq, limit)
			if err != nil {
				t.Fatalf("around %d/%d: %v", seq, limit, err)
			}
			want, err := store.Around(e.ctx, c.full, "c1", seq, limit)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := show(got), show(want); g != w {
				t.Fatalf("around %d limit %d:\n got %v\nwant %v", seq, limit, seqsOf(got), seqsOf(want))
			}
		}
	}
	if _, err := r.Around(e.ctx, "c1", 5, store.MaxPageLimit+1); !errors.Is(err, store.ErrBadPage) {
		t.Fatalf("around with a bad limit: %v", err)
	}
}

func TestFromStream(t *testing.T) {
	msg := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "c1", MessageID: "m1", SenderID: "u1",
		SenderDevice: "d1", ClientMsgID: "cm1", Text: "hi", SentAt: 1_700_000_000_123}
	data, _ := msg.Encode()
	m, ok, err := FromStream("chat.c1.msg", 7, data)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := "[c1 #7 id=m1 msg from=u1/d1 cm=cm1 \"hi\" member= at=1700000000123]\n"
	if got := show([]store.Message{m}); got != want || m.SentAt.Location() != time.UTC {
		t.Fatalf("got %s (%v)\nwant %s", got, m.SentAt.Location(), want)
	}

	mem := streams.ChatEvent{Kind: streams.KindMember, ConversationID: "c1", MessageID: "m2", SenderID: "u1",
		SentAt: 1, Member: &streams.MemberChange{Action: streams.MemberRemoved, UserIDs: []string{"u2", "u3"}}}
	data, _ = mem.Encode()
	m, ok, err = FromStream("chat.c1.member", 8, data)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if string(m.Member) != `{"action":"removed","user_ids":["u2","u3"]}` || m.Kind != streams.KindMember || m.Seq != 8 {
		t.Fatalf("member event %s", show([]store.Message{m}))
	}
	if dec := DecodeMember(m.Member); dec == nil || dec.Action != streams.MemberRemoved || fmt.Sprint(dec.UserIDs) != "[u2 u3]" {
		t.Fatalf("decoded member %+v", dec)
	}
	if ev := Event(m); ev.Member == nil || ev.Seq != 8 || ev.MessageID != "m2" {
		t.Fatalf("frame %+v", ev)
	}

	// Receipts and unknown kinds are not timeline events, whatever their payload.
	for _, kind := range []string{streams.KindRead, streams.KindDelivered, "typing"} {
		m, ok, err := FromStream("chat.c1."+kind, 9, []byte(`not even json`))
		if ok || err != nil || m.Seq != 0 {
			t.Errorf("%s: ok %v err %v", kind, ok, err)
		}
	}
	// An edit is one, carrying its target and the state it leaves it in; without a target it is
	// an error.
	edit, _ := streams.ChatEvent{Kind: streams.KindEdit, ConversationID: "c1", MessageID: "m9", SenderID: "u1",
		Text: "fixed", SentAt: 5, Target: &streams.Target{Seq: 2, MessageID: "m2"}}.Encode()
	if m, ok, err := FromStream("chat.c1.edit", 9, edit); err != nil || !ok || m.Target != 2 || m.TargetID != "m2" || m.Text != "fixed" || m.EditedAt.UnixMilli() != 5 {
		t.Errorf("edit: %+v, %v, %v", m, ok, err)
	}
	if _, ok, err := FromStream("chat.c1.edit", 9, []byte(`{"v":1,"kind":"edit","conversation_id":"c1","message_id":"m9"}`)); err == nil || ok {
		t.Errorf("edit without a target: ok %v err %v", ok, err)
	}
	// Bad subjects are errors.
	for _, subj := range []string{"", "chat.c1", "chat.c1.msg.x", "push.u1", "chat..msg"} {
		if _, ok, err := FromStream(subj, 1, data); err == nil || ok {
			t.Errorf("subject %q: ok %v err %v", subj, ok, err)
		}
	}
	// Bad payloads on timeline subjects are errors.
	for _, raw := range []string{`{`, `{"v":2,"kind":"msg","conversation_id":"c1","message_id":"m"}`, `{"v":1,"kind":"msg"}`} {
		if _, ok, err := FromStream("chat.c1.msg", 1, []byte(raw)); err == nil || ok {
			t.Errorf("payload %s: ok %v err %v", raw, ok, err)
		}
	}
	if _, _, err := FromStream("chat.c1.msg", 1, []byte(`{"v":2,"kind":"msg","conversation_id":"c1","message_id":"m"}`)); !errors.Is(err, streams.ErrVersion) {
		t.Errorf("v2 payload: %v, want ErrVersion", err)
	}
}

func TestCountAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := buildCorpus(t, e, 60, 30)
	r := New(c.partial, e.js)
	for _, after := range []uint64{0, 1, 29, 30, 31, 45, 59, 60} {
		for _, notFrom := range []string{"u0", "u1", "nobody"} {
			want := 0
			for _, m := range c.c1 {
				if m.Seq > after && m.Kind == streams.KindMsg && m.SenderID != notFrom {
					want++
				}
			}
			for _, limit := range []int{1, 3, 1000} {
				got, err := r.CountAfter(e.ctx, "c1", after, notFrom, limit)
				if err != nil {
					t.Fatal(err)
				}
				if w := min(want, limit); got != w {
					t.Fatalf("count after %d not from %s limit %d: %d, want %d", after, notFrom, limit, got, w)
				}
			}
		}
	}
}

// TestPageAppliesRevisionsThePersisterHasNotStored: while the persister lags, history shows each
// message as a caught-up store would (edited, deleted, hidden), with every revision in its place.
func TestPageAppliesRevisionsThePersisterHasNotStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var full, partial store.Store = pebbletest.Open(t), pebbletest.Open(t)
	pub := func(kind string, target uint64, text, sender string) uint64 {
		t.Helper()
		ev := streams.ChatEvent{Kind: kind, ConversationID: "c1", MessageID: fmt.Sprintf("m%d", time.Now().UnixNano()),
			SenderID: sender, SenderDevice: "d1", ClientMsgID: fmt.Sprintf("k%d", time.Now().UnixNano()), Text: text,
			SentAt: time.Now().UnixMilli()}
		if target != 0 {
			ev.Target = &streams.Target{Seq: target, MessageID: "t"}
		}
		data, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := e.js.Publish(e.ctx, streams.ChatSubject("c1", kind), data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	a, b, c := pub(streams.KindMsg, 0, "alpha", "u1"), pub(streams.KindMsg, 0, "bravo", "u1"), pub(streams.KindMsg, 0, "charlie", "u2")
	e.ackUpTo(t, 3)
	pub(streams.KindEdit, a, "alpha 1", "u1")
	pub(streams.KindDelete, b, "", "u1")
	pub(streams.KindHide, c, "", "u1")
	pub(streams.KindEdit, a, "alpha 2", "u1")
	d := pub(streams.KindMsg, 0, "delta", "u2")
	pub(streams.KindEdit, d, "delta 1", "u2")
	pub(streams.KindEdit, b, "bravo again", "u1") // raced the delete: loses

	// full is caught up (as the persister writes: target revised, entry without text); partial
	// holds what the persister acknowledged.
	raw := func(seq uint64) store.Message {
		m, err := e.st.GetMsg(e.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msg, _, err := FromStream(m.Subject, m.Sequence, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	head, err := New(full, e.js).Head(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= head; seq++ {
		m := raw(seq)
		if streams.Revises(m.Kind) {
			if _, err := full.(store.Reviser).ReviseMessage(e.ctx, "c1", m.Target, Revision(m)); err != nil {
				t.Fatal(err)
			}
			m.Text, m.EditedAt, m.DeletedAt = "", time.Time{}, time.Time{}
		}
		if _, _, err := full.InsertMessage(e.ctx, m); err != nil {
			t.Fatal(err)
		}
		if seq <= 3 {
			if _, _, err := partial.InsertMessage(e.ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	messages := func(ms []store.Message) string {
		var b strings.Builder
		for _, m := range ms {
			if m.Kind == streams.KindMsg {
				edited := int64(0)
				if !m.EditedAt.IsZero() {
					edited = m.EditedAt.UnixMilli()
				}
				fmt.Fprintf(&b, "#%d %q edited=%d deleted=%v hidden=%v\n", m.Seq, m.Text, edited, m.Deleted(), m.HiddenFor)
			}
		}
		return b.String()
	}
	r := New(partial, e.js)
	for _, p := range []store.Page{{Limit: 50}, {Limit: 3}, {Oldest: true, Limit: 2}, {Before: 5, Limit: 50}, {After: 3, Limit: 50}} {
		got, err := r.Page(e.ctx, "c1", p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := New(full, e.js).Page(e.ctx, "c1", p)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := messages(got), messages(want); g != w || !slices.Equal(seqsOf(got), seqsOf(want)) {
			t.Fatalf("page %+v:\n got %v\n%s\nwant %v\n%s", p, seqsOf(got), g, seqsOf(want), w)
		}
	}
	all, err := r.Page(e.ctx, "c1", store.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("#%d \"delta 1\" edited=", d)
	if s := messages(all); !strings.Contains(s, want) || !strings.Contains(s, "\"\" edited=0 deleted=true") || !strings.Contains(s, "hidden=[u1]") {
		t.Fatalf("history while the persister lags:\n%s", s)
	}
}
