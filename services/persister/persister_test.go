package persister

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

type env struct {
	ctx   context.Context
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	st    jetstream.Stream
	store store.Store
	n     int // events published, for unique ids
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, pebbletest.Open(t))
}

// newEnvOn is newEnv on the given store, which it closes when the test ends.
func newEnvOn(t *testing.T, s store.Store) *env {
	t.Helper()
	t.Cleanup(func() { _ = s.Close() })
	te := natsxtest.Start(t)
	return &env{ctx: te.Ctx, srv: te.Server, nc: te.NC, js: te.JS, st: te.Stream(t, streams.ChatStream), store: s}
}

// start runs a persister until the test ends (or until the returned stop is called).
func (e *env) start(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	p, err := New(cfg, Deps{Log: zap.NewNop(), JS: e.js, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop persister: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// publishRaw publishes data on subject with the given Nats-Msg-Id (none if empty).
func (e *env) publishRaw(t *testing.T, subject string, data []byte, msgID string) *jetstream.PubAck {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
	if msgID != "" {
		msg.Header.Set(streams.HeaderMsgID, msgID)
	}
	ack, err := e.js.PublishMsg(e.ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// send publishes a text message as the gateway does and returns the store.Message it must become.
func (e *env) send(t *testing.T, conv, sender, clientMsgID string) store.Message {
	t.Helper()
	e.n++
	ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv, MessageID: fmt.Sprintf("m%05d", e.n),
		SenderID: sender, SenderDevice: "d1", ClientMsgID: clientMsgID,
		Text: fmt.Sprintf("message %d from %s", e.n, sender), SentAt: 1_700_000_000_000 + int64(e.n)}
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack := e.publishRaw(t, streams.ChatSubject(conv, streams.KindMsg), data, streams.DedupeID(sender, clientMsgID))
	return store.Message{ConversationID: conv, Seq: ack.Sequence, ID: ev.MessageID, Kind: streams.KindMsg,
		SenderID: sender, SenderDevice: "d1", ClientMsgID: clientMsgID, Text: ev.Text, SentAt: time.UnixMilli(ev.SentAt).UTC()}
}

// member publishes a membership change and returns the store.Message it must become.
func (e *env) member(t *testing.T, conv, actor, action string, users ...string) store.Message {
	t.Helper()
	e.n++
	change := streams.MemberChange{Action: action, UserIDs: users}
	ev := streams.ChatEvent{Kind: streams.KindMember, ConversationID: conv, MessageID: fmt.Sprintf("m%05d", e.n),
		SenderID: actor, SentAt: 1_700_000_000_000 + int64(e.n), Member: &change}
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack := e.publishRaw(t, streams.ChatSubject(conv, streams.KindMember), data, "")
	return store.Message{ConversationID: conv, Seq: ack.Sequence, ID: ev.MessageID, Kind: streams.KindMember,
		SenderID: actor, Member: []byte(memberJSON(change)), SentAt: time.UnixMilli(ev.SentAt).UTC()}
}

func memberJSON(c streams.MemberChange) string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// receipt publishes a read or delivered event: not the persister's to store.
func (e *env) receipt(t *testing.T, conv, kind string) uint64 {
	t.Helper()
	e.n++
	data, _ := streams.ChatEvent{Kind: kind, ConversationID: conv, MessageID: fmt.Sprintf("m%05d", e.n), SenderID: "u1", SentAt: 1}.Encode()
	return e.publishRaw(t, streams.ChatSubject(conv, kind), data, "").Sequence
}

// settled waits until the persister has acked (or terminated) everything up to last.
func (e *env) settled(t *testing.T, last uint64) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := e.st.Consumer(e.ctx, streams.PersisterConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ci, err := cons.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.AckFloor.Stream == last && ci.NumAckPending == 0 && ci.NumPending == 0 {
			return ci
		}
		if time.Now().After(deadline) {
			t.Fatalf("persister not settled at %d: ack floor %d, ack pending %d, pending %d, redelivered %d",
				last, ci.AckFloor.Stream, ci.NumAckPending, ci.NumPending, ci.NumRedelivered)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) lastSeq(t *testing.T) uint64 {
	t.Helper()
	info, err := e.st.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// timeline reads a conversation's whole stored timeline, oldest first, one line per event.
func (e *env) timeline(t *testing.T, conv string) []string {
	t.Helper()
	var out []string
	var after uint64
	for {
		page, err := e.store.Messages(e.ctx, conv, store.Page{After: after, Oldest: true, Limit: store.MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for i := len(page) - 1; i >= 0; i-- {
			out = append(out, line(page[i]))
			after = page[i].Seq
		}
	}
}

func line(m store.Message) string {
	return fmt.Sprintf("%s #%d id=%s %s from=%s/%s cm=%s %q member=%s at=%d", m.ConversationID, m.Seq, m.ID,
		m.Kind, m.SenderID, m.SenderDevice, m.ClientMsgID, m.Text, m.Member, m.SentAt.UnixMilli())
}

func lines(ms []store.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, line(m))
	}
	return out
}

func (e *env) members(t *testing.T, conv string) string {
	t.Helper()
	ms, err := e.store.Members(e.ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s:%s(%d,%d] ", m.UserID, m.Role, m.JoinedSeq, m.LeftSeq)
	}
	return b.String()
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got (%d)\n  %s\nwant (%d)\n  %s", what, len(got), strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{0, -1, 257} {
		if _, err := New(Config{Workers: w}, Deps{Log: zap.NewNop()}); err == nil {
			t.Errorf("workers %d accepted", w)
		}
	}
	for _, l := range []time.Duration{-time.Millisecond, 2 * time.Second} {
		if _, err := New(Config{Workers: 1, Linger: l}, Deps{Log: zap.NewNop()}); err == nil {
			t.Errorf("linger %s accepted", l)
		}
		if _, err := New(Config{Workers: 1, Gather: l}, Deps{Log: zap.NewNop()}); err == nil {
			t.Errorf("gather %s accepted", l)
		}
	}
	p, err := New(Config{Workers: 1, Linger: 5 * time.Millisecond}, Deps{Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("stop before start: %v", err)
	}
}

// shared is a persister of a store other processes' persisters write too: they share the consumer.
var shared = Config{Workers: 32, Gather: DefaultConfig().Gather}

// Every event is stored once, by a sole persister (one ack a chunk) and by one that shares its
// consumer (one ack an event).
func TestPersistsEveryEventOnce(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  Config
	}{{"sole", DefaultConfig()}, {"shared", shared}} {
		t.Run(mode.name, func(t *testing.T) { persistsEveryEventOnce(t, mode.cfg) })
	}
}

func persistsEveryEventOnce(t *testing.T, cfg Config) {
	e := newEnv(t)
	convs := []string{"c1", "c2", "c3"}
	want := map[string][]store.Message{}
	for _, c := range convs {
		want[c] = append(want[c], e.member(t, c, "alice", streams.MemberCreated, "alice", "bob"))
	}
	// Half before the persister starts (a backlog), half while it runs.
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			c := convs[i%3]
			sender := []string{"alice", "bob"}[i%2]
			want[c] = append(want[c], e.send(t, c, sender, fmt.Sprintf("cm%03d", i)))
			if i%10 == 0 {
				e.receipt(t, c, streams.KindRead)
				e.receipt(t, c, streams.KindDelivered)
			}
			if i%15 == 0 { // a retry inside the duplicate window: the stream keeps one
				e.n++
				data, _ := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: c, MessageID: "retry", SenderID: sender,
					ClientMsgID: fmt.Sprintf("cm%03d", i), Text: "retry", SentAt: 1}.Encode()
				if ack := e.publishRaw(t, streams.ChatSubject(c, streams.KindMsg), data, streams.DedupeID(sender, fmt.Sprintf("cm%03d", i))); !ack.Duplicate {
					t.Fatalf("retry of cm%03d not deduplicated by the stream", i)
				}
			}
		}
	}
	publish(0, 60)
	e.start(t, cfg)
	publish(60, 120)
	for _, c := range convs {
		want[c] = append(want[c], e.member(t, c, "alice", streams.MemberAdded, "carol"))
	}
	last := e.lastSeq(t)
	ci := e.settled(t, last)
	if ci.NumRedelivered != 0 || ci.Delivered.Consumer != last {
		t.Fatalf("delivered %d, redelivered %d; want each of %d once", ci.Delivered.Consumer, ci.NumRedelivered, last)
	}
	for _, c := range convs {
		equal(t, "timeline of "+c, e.timeline(t, c), lines(want[c]))
	}
	for _, m := range want["c2"] {
		if m.ClientMsgID == "" {
			continue
		}
		got, err := e.store.MessageByClientID(e.ctx, m.SenderID, m.ClientMsgID)
		if err != nil || got.Seq != m.Seq {
			t.Fatalf("by client id %s/%s: seq %d, %v; want %d", m.SenderID, m.ClientMsgID, got.Seq, err, m.Seq)
		}
	}
}

// ackPolicy is the persister consumer's ack policy now.
func (e *env) ackPolicy(t *testing.T) jetstream.AckPolicy {
	t.Helper()
	cons, err := e.st.Consumer(e.ctx, streams.PersisterConsumer)
	if err != nil {
		t.Fatal(err)
	}
	return cons.CachedInfo().Config.AckPolicy
}

// Each persister makes the consumer's ack policy its own when it starts — a sole one ack all, one
// that shares the consumer explicit — and a change of kind stores every event once: the consumer
// made again starts just after the old one's ack floor.
func TestEachKindOfPersisterMakesItsAckPolicy(t *testing.T) {
	e := newEnv(t)
	if got := e.ackPolicy(t); got != jetstream.AckExplicitPolicy {
		t.Fatalf("the consumer as defined acks %s, want explicit", got)
	}
	var want []store.Message
	for round, mode := range []struct {
		cfg    Config
		policy jetstream.AckPolicy
	}{{DefaultConfig(), jetstream.AckAllPolicy}, {shared, jetstream.AckExplicitPolicy}, {DefaultConfig(), jetstream.AckAllPolicy}} {
		for i := range 20 {
			want = append(want, e.send(t, "c", "alice", fmt.Sprintf("r%dm%d", round, i)))
		}
		stop := e.start(t, mode.cfg)
		if got := e.ackPolicy(t); got != mode.policy {
			t.Fatalf("round %d: the consumer acks %s, want %s", round, got, mode.policy)
		}
		last := e.lastSeq(t)
		if ci := e.settled(t, last); ci.NumRedelivered != 0 || ci.Delivered.Stream != last {
			t.Fatalf("round %d: delivered up to %d, %d redelivered; want each once up to %d", round, ci.Delivered.Stream, ci.NumRedelivered, last)
		}
		stop()
	}
	equal(t, "timeline", e.timeline(t, "c"), lines(want))
}

// A sole persister's consumer acks all, so a new run would acknowledge, with its first ack, what
// a crashed run was delivered and never wrote. It resets the consumer to its ack floor first:
// those events come again at once and first, and the store has every event.
func TestASoleRestartStoresWhatACrashedRunHeldFirst(t *testing.T) {
	e := newEnv(t)
	e.start(t, DefaultConfig())() // makes the consumer ack all
	var want []store.Message
	for i := range 30 {
		want = append(want, e.send(t, "c", "alice", fmt.Sprintf("cm%d", i)))
	}
	natsxtest.PullAndDie(t, e.srv, streams.ChatStream, streams.PersisterConsumer, 10)
	e.start(t, DefaultConfig())
	e.settled(t, e.lastSeq(t))
	equal(t, "timeline", e.timeline(t, "c"), lines(want))
}

// Deliveries a sole persister never received (another puller takes them and drops them, as a
// pull that gave up on what the server sent does) are stored all the same: its consumer acks
// all, and the persister resets it rather than acknowledge past them.
func TestASolePersisterStoresWhatAPullLost(t *testing.T) {
	e := newEnv(t)
	e.start(t, DefaultConfig())
	var want []store.Message
	send := func() {
		for range 20 {
			want = append(want, e.send(t, "c", "alice", fmt.Sprintf("cm%d", len(want))))
		}
	}
	stolen := natsxtest.Steal(t, "", e.srv, streams.ChatStream, streams.PersisterConsumer, 3, send)
	send() // deliveries after the last theft show its gap
	e.settled(t, e.lastSeq(t))
	equal(t, fmt.Sprintf("timeline (stolen %v)", stolen), e.timeline(t, "c"), lines(want))
}

func TestMalformedEventsAreTerminated(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  Config
	}{{"sole", DefaultConfig()}, {"shared", Config{Workers: 1}}} {
		t.Run(mode.name, func(t *testing.T) { malformedEventsAreTerminated(t, mode.cfg) })
	}
}

func malformedEventsAreTerminated(t *testing.T, cfg Config) {
	e := newEnv(t)
	good1 := e.send(t, "c1", "alice", "a1")
	bad := map[string][]byte{
		streams.ChatSubject("c1", streams.KindMsg):    []byte(`{not json`),
		streams.ChatSubject("c1", streams.KindMember): []byte(`{"v":2,"kind":"member","conversation_id":"c1","message_id":"x"}`),
		"chat.c1":           []byte(`{"v":1,"kind":"msg","conversation_id":"c1","message_id":"y"}`),
		"chat.c1.msg.extra": []byte(`{"v":1,"kind":"msg","conversation_id":"c1","message_id":"z"}`),
	}
	for subj, data := range bad {
		e.publishRaw(t, subj, data, "")
	}
	e.publishRaw(t, streams.ChatSubject("c1", streams.KindMsg), []byte(`{"v":1,"kind":"msg","conversation_id":"c1"}`), "")
	e.start(t, cfg)
	good2 := e.send(t, "c1", "bob", "b1")
	last := e.lastSeq(t)
	e.settled(t, last)
	time.Sleep(300 * time.Millisecond) // past the first nak backoff (100ms): a nak-ed event would be back
	if ci, err := e.st.Consumer(e.ctx, streams.PersisterConsumer); err != nil {
		t.Fatal(err)
	} else if info := ci.CachedInfo(); info.NumRedelivered != 0 || info.Delivered.Consumer != last || info.NumAckPending != 0 {
		t.Fatalf("delivered %d, redelivered %d, ack pending %d; want %d, 0, 0", info.Delivered.Consumer, info.NumRedelivered, info.NumAckPending, last)
	}
	equal(t, "timeline of c1", e.timeline(t, "c1"), lines([]store.Message{good1, good2}))
}

// snapshot is everything the persister writes, rendered for exact comparison.
func (e *env) snapshot(t *testing.T, convs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, c := range convs {
		fmt.Fprintf(&b, "%s members: %s\n", c, e.members(t, c))
		for _, l := range e.timeline(t, c) {
			b.WriteString(l + "\n")
		}
		conv, err := e.store.Conversation(e.ctx, c)
		fmt.Fprintf(&b, "%s record: %+v %v\n", c, conv, err)
	}
	return b.String()
}

func TestReplayChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.member(t, "g1", "alice", streams.MemberCreated, "alice", "bob", "carol")
	for i := 0; i < 30; i++ {
		e.send(t, []string{"g1", "d1"}[i%2], []string{"alice", "bob", "carol"}[i%3], fmt.Sprintf("cm%02d", i))
		switch i {
		case 10:
			e.member(t, "g1", "alice", streams.MemberAdded, "dave")
		case 20:
			e.member(t, "g1", "alice", streams.MemberRemoved, "bob")
		case 25:
			e.member(t, "g1", "carol", streams.MemberLeft, "carol")
		}
		if i%7 == 0 {
			e.receipt(t, "g1", streams.KindRead)
		}
	}
	last := e.lastSeq(t)
	stop := e.start(t, DefaultConfig())
	e.settled(t, last)
	stop()
	before := e.snapshot(t, "g1", "d1")
	if strings.Count(before, "\ng1 #") != 19 || strings.Count(before, "\nd1 #") != 15 {
		t.Fatalf("unexpected first run:\n%s", before)
	}

	// Replay everything: drop the durable and let Apply recreate it from the start of the stream.
	if err := e.js.DeleteConsumer(e.ctx, streams.ChatStream, streams.PersisterConsumer); err != nil {
		t.Fatal(err)
	}
	if err := natsx.Apply(e.ctx, e.js, streams.Define(streams.DefaultOptions())); err != nil {
		t.Fatal(err)
	}
	cons, err := e.st.Consumer(e.ctx, streams.PersisterConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if info := cons.CachedInfo(); info.NumPending != last || info.AckFloor.Stream != 0 {
		t.Fatalf("recreated consumer: pending %d, ack floor %d; want %d, 0", info.NumPending, info.AckFloor.Stream, last)
	}
	e.start(t, DefaultConfig())
	e.settled(t, last)
	if after := e.snapshot(t, "g1", "d1"); after != before {
		t.Fatalf("replay changed the store:\nbefore\n%s\nafter\n%s", before, after)
	}
}

func TestDuplicateClientIDAtTwoSeqsKeepsFirst(t *testing.T) {
	e := newEnv(t)
	e.start(t, DefaultConfig())
	first := e.send(t, "c1", "alice", "dup")
	e.settled(t, first.Seq)
	// The client retried after the stream's duplicate window: a second event with the same
	// client message id (and a new message id) at a later seq.
	e.n++
	data, _ := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "c1", MessageID: "late-retry", SenderID: "alice",
		SenderDevice: "d1", ClientMsgID: "dup", Text: "retried", SentAt: 2}.Encode()
	second := e.publishRaw(t, streams.ChatSubject("c1", streams.KindMsg), data, "")
	if second.Duplicate || second.Sequence == first.Seq {
		t.Fatalf("second publish deduplicated by the stream: %+v", second)
	}
	other := e.send(t, "c1", "bob", "dup") // another sender's "dup" is a different message
	e.settled(t, other.Seq)
	equal(t, "timeline of c1", e.timeline(t, "c1"), lines([]store.Message{first, other}))
	got, err := e.store.MessageByClientID(e.ctx, "alice", "dup")
	if err != nil || got.Seq != first.Seq || got.ID != first.ID {
		t.Fatalf("by client id: %+v, %v; want seq %d", got, err, first.Seq)
	}
	if _, err := e.store.MessageByID(e.ctx, "c1", "late-retry"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the late retry was stored: %v", err)
	}
}

// Membership is applied in stream order by the API and by fanout; the persister's parallel
// workers must leave it alone (an out-of-order apply would keep a removed member in).
func TestLeavesMembershipAlone(t *testing.T) {
	e := newEnv(t)
	created := e.member(t, "g1", "alice", streams.MemberCreated, "alice")
	added := e.member(t, "g1", "alice", streams.MemberAdded, "bob")
	removed := e.member(t, "g1", "alice", streams.MemberRemoved, "bob")
	e.member(t, "g1", "alice", streams.MemberAdded, "carol")
	e.member(t, "g1", "alice", streams.MemberRenamed)
	// What the API applied when it published: alice and bob; bob left at removed.Seq.
	for _, m := range []store.Member{
		{ConversationID: "g1", UserID: "alice", Role: "owner", JoinedSeq: created.Seq - 1},
		{ConversationID: "g1", UserID: "bob", Role: "member", JoinedSeq: added.Seq - 1, LeftSeq: removed.Seq},
	} {
		if err := e.store.PutMember(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	want := e.members(t, "g1")
	e.start(t, DefaultConfig())
	last := e.lastSeq(t)
	e.settled(t, last)
	if got := e.members(t, "g1"); got != want {
		t.Fatalf("members after persisting: %s, want them untouched: %s", got, want)
	}
	if n := len(e.timeline(t, "g1")); n != 5 {
		t.Fatalf("%d member events stored, want 5", n)
	}
	if _, err := e.store.Conversation(e.ctx, "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename created a conversation record: %v", err)
	}
}

func TestReceiptsAdvanceWatermarks(t *testing.T) {
	e := newEnv(t)
	receipt := func(kind, user string, upTo uint64) {
		t.Helper()
		e.n++
		data, _ := streams.ChatEvent{Kind: kind, ConversationID: "c1", MessageID: fmt.Sprintf("r%05d", e.n), SenderID: user,
			SenderDevice: "d1", SentAt: 1, UpTo: upTo}.Encode()
		e.publishRaw(t, streams.ChatSubject("c1", kind), data, "")
	}
	receipt(streams.KindRead, "bob", 5)
	receipt(streams.KindDelivered, "bob", 9)
	receipt(streams.KindRead, "bob", 3) // older: marks never move back
	receipt(streams.KindDelivered, "alice", 2)
	e.publishRaw(t, streams.ChatSubject("c1", streams.KindRead), []byte(`{"v":1,"kind":"read"`), "") // malformed: terminated
	receipt(streams.KindRead, "carol", 4)
	e.start(t, Config{Workers: 1})
	ci := e.settled(t, e.lastSeq(t))
	if ci.NumRedelivered != 0 {
		t.Fatalf("redelivered %d", ci.NumRedelivered)
	}
	for user, want := range map[string]store.Watermark{
		"bob":   {ConversationID: "c1", UserID: "bob", Delivered: 9, Read: 5},
		"alice": {ConversationID: "c1", UserID: "alice", Delivered: 2, Read: 0},
		"carol": {ConversationID: "c1", UserID: "carol", Delivered: 4, Read: 4}, // read implies delivered
	} {
		got, err := e.store.Watermark(e.ctx, "c1", user)
		if err != nil || got != want {
			t.Fatalf("watermark of %s: %+v, %v; want %+v", user, got, err, want)
		}
	}
	if n := len(e.timeline(t, "c1")); n != 0 {
		t.Fatalf("receipts stored as %d timeline events", n)
	}
}

// What the persister has acked survives a crash of the machine: on a group-committing store it
// writes a chunk unsynced and syncs it before the acks, never after.
func TestAckedEventsSurviveAMachineCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, err := pebble.Open("db", pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, s)
	e.start(t, DefaultConfig())
	var want []store.Message
	for i := range 300 {
		want = append(want, e.send(t, "dab", fmt.Sprintf("u%d", i%3), fmt.Sprintf("c%d", i)))
	}
	e.settled(t, want[len(want)-1].Seq)

	crashed, err := pebble.Open("db", pebble.Options{FS: fs.CrashClone(vfs.CrashCloneCfg{})})
	if err != nil {
		t.Fatal(err)
	}
	defer crashed.Close()
	lost := 0
	for _, m := range want {
		if _, err := crashed.MessageByClientID(e.ctx, m.SenderID, m.ClientMsgID); err != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acked messages lost in the crash", lost, len(want))
	}
}
