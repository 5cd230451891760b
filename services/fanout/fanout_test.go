package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/routing"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

type env struct {
	ctx   context.Context
	nc    *nats.Conn
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	store store.Store
	srv   *server.Server
	n     int

	stopTimeout   time.Duration  // for Stop at the end of the test; 10s unless set
	barrierWindow *time.Duration // the barrier's window; Config's default unless set
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, streams.DefaultOptions())
}

func newEnvWith(t *testing.T, opts streams.Options) *env {
	t.Helper()
	te := natsxtest.StartWith(t, opts)
	return &env{ctx: te.Ctx, nc: te.NC, js: te.JS, kv: te.KeyValue(t, streams.RoutesBucket), store: pebbletest.Open(t), srv: te.Server}
}

func (e *env) start(t *testing.T) *Fanout {
	t.Helper()
	cfg := DefaultConfig()
	cfg.PushOnlineLedger = true // the push tests read the online entries
	if e.barrierWindow != nil {
		cfg.BarrierWindow = *e.barrierWindow
	}
	f, err := New(cfg, Deps{Log: zap.NewNop(), NC: e.nc, JS: e.js, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		timeout := e.stopTimeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			t.Errorf("stop fanout: %v", err)
		}
	})
	return f
}

// gateway is a fake gateway: a subscription to its deliver subject.
type gateway struct {
	id  string
	sub *nats.Subscription
	reg *routing.Registrar
	n   map[uint64]uint64 // chain -> the last N that expect saw
}

func (e *env) gateway(t *testing.T, id string) *gateway {
	t.Helper()
	sub, err := e.nc.SubscribeSync(streams.DeliverSubject(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &gateway{id: id, sub: sub, reg: routing.NewRegistrar(e.kv, id)}
}

func (e *env) route(t *testing.T, g *gateway, user, device string) uint64 {
	t.Helper()
	rev, err := g.reg.Put(e.ctx, user, device, "conn-"+user+"-"+device)
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	return rev
}

// settle waits the barrier's window after a write, as a gateway or the API does before relying
// on it (streams.Settle).
func (e *env) settle() {
	w := DefaultConfig().BarrierWindow
	if e.barrierWindow != nil {
		w = *e.barrierWindow
	}
	time.Sleep(w)
}

func (e *env) putConversation(t *testing.T, id string, kind store.ConversationKind) {
	t.Helper()
	if err := e.store.PutConversation(e.ctx, store.Conversation{ID: id, Kind: kind, CreatedBy: "alice", CreatedAt: time.UnixMilli(1_700_000_000_000)}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) putMember(t *testing.T, conv, user string, joined, left uint64) {
	t.Helper()
	if err := e.store.PutMember(e.ctx, store.Member{ConversationID: conv, UserID: user, Role: "member", JoinedSeq: joined, LeftSeq: left}); err != nil {
		t.Fatal(err)
	}
}

// publish publishes ev on its conversation's subject for its kind and returns it as it must
// arrive (version stamped) with its seq.
func (e *env) publish(t *testing.T, ev streams.ChatEvent) (uint64, streams.ChatEvent) {
	t.Helper()
	e.n++
	if ev.MessageID == "" {
		ev.MessageID = fmt.Sprintf("m%05d", e.n)
	}
	if ev.SenderID == "" {
		ev.SenderID = "alice"
	}
	if ev.Kind == streams.KindMsg && ev.Text == "" {
		ev.Text = fmt.Sprintf("text %d", e.n)
		ev.ClientMsgID = fmt.Sprintf("cm%05d", e.n)
	}
	ev.SentAt = 1_700_000_000_000 + int64(e.n)
	ev.V = streams.Version
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.Publish(e.ctx, streams.ChatSubject(ev.ConversationID, ev.Kind), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence, ev
}

func (e *env) msg(t *testing.T, conv string) (uint64, streams.ChatEvent) {
	t.Helper()
	return e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv})
}

func (e *env) nextSeq(t *testing.T) uint64 {
	t.Helper()
	st, err := e.js.Stream(e.ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq + 1
}

// eventDelivery is the delivery of the timeline event ev at seq to users.
func eventDelivery(seq uint64, users []string, ev streams.ChatEvent) streams.Delivery {
	frame, err := json.Marshal(streams.EventFromChat(seq, ev))
	if err != nil {
		panic(err)
	}
	return streams.Delivery{Seq: seq, Conversation: ev.ConversationID, Users: users, Frame: frame}
}

// expect reads the next delivery of g and checks it is exactly want.
func (g *gateway) expect(t *testing.T, want streams.Delivery) {
	t.Helper()
	m, err := g.sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: waiting for the delivery of seq %d to %v: %v", g.id, want.Seq, want.Users, err)
	}
	got, err := streams.DecodeDelivery(m.Data)
	if err != nil {
		t.Fatalf("%s: bad delivery %s: %v", g.id, m.Data, err)
	}
	if g.n == nil {
		g.n = map[uint64]uint64{}
	}
	if got.Chain == 0 || got.N != g.n[got.Chain]+1 {
		t.Fatalf("%s: delivery of seq %d numbered %d in chain %d, after %d", g.id, got.Seq, got.N, got.Chain, g.n[got.Chain])
	}
	g.n[got.Chain] = got.N
	got.Chain, got.N = 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: delivery\n got seq %d users %v frame %s\nwant seq %d users %v frame %s",
			g.id, got.Seq, got.Users, got.Frame, want.Seq, want.Users, want.Frame)
	}
}

// quiet checks that g receives nothing more.
func (g *gateway) quiet(t *testing.T, wait time.Duration) {
	t.Helper()
	m, err := g.sub.NextMsg(wait)
	if err == nil {
		t.Fatalf("%s: unexpected delivery %s", g.id, m.Data)
	}
	if !errors.Is(err, nats.ErrTimeout) {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []time.Duration{0, -time.Second} {
		if _, err := New(Config{RouteBarrierWait: w}, Deps{Log: zap.NewNop()}); err == nil {
			t.Errorf("barrier wait %s accepted", w)
		}
	}
}

func TestDeliversToMemberGatewaysInStreamOrder(t *testing.T) {
	e := newEnv(t)
	gwA, gwB := e.gateway(t, "gwA"), e.gateway(t, "gwB")
	e.route(t, gwA, "alice", "phone")
	e.route(t, gwB, "alice", "laptop")
	e.route(t, gwA, "alice", "tablet") // a second device on gwA: still one name
	e.route(t, gwA, "bob", "phone")
	e.route(t, gwB, "carol", "phone")
	e.route(t, gwA, "erin", "phone")  // not a member
	e.route(t, gwB, "frank", "phone") // left before the events
	e.route(t, gwA, "gina", "phone")  // joins after them
	// c1: alice, bob, carol, dave (no device online), frank (left at 1), gina (joined at 1000).
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		e.putMember(t, "c1", u, 0, 0)
	}
	e.putMember(t, "c1", "frank", 0, 1)
	e.putMember(t, "c1", "gina", 1000, 0)
	// c2: bob and carol.
	e.putMember(t, "c2", "bob", 0, 0)
	e.putMember(t, "c2", "carol", 0, 0)
	e.putConversation(t, "c1", store.Group)
	e.putConversation(t, "c2", store.Group)
	e.start(t)

	if seq, _ := e.msg(t, "c0"); seq != 1 { // a conversation with no members: nobody gets it
		t.Fatalf("first seq %d", seq)
	}
	var wantA, wantB []streams.Delivery
	for i := 0; i < 30; i++ {
		conv := []string{"c1", "c1", "c2"}[i%3]
		seq, ev := e.msg(t, conv)
		if conv == "c1" {
			wantA = append(wantA, eventDelivery(seq, []string{"alice", "bob"}, ev))
			wantB = append(wantB, eventDelivery(seq, []string{"alice", "carol"}, ev))
		} else {
			wantA = append(wantA, eventDelivery(seq, []string{"bob"}, ev))
			wantB = append(wantB, eventDelivery(seq, []string{"carol"}, ev))
		}
		if i%4 == 0 { // receipts (from dave, who has no device online) and unknown kinds are not timeline events
			for _, kind := range []string{streams.KindRead, streams.KindDelivered, "future"} {
				e.publish(t, streams.ChatEvent{Kind: kind, ConversationID: conv, SenderID: "dave", UpTo: 1})
			}
		}
	}
	for _, w := range wantA {
		gwA.expect(t, w)
	}
	for _, w := range wantB {
		gwB.expect(t, w)
	}
	gwA.quiet(t, 200*time.Millisecond)
	gwB.quiet(t, 50*time.Millisecond)
}

func TestMembershipBoundsAreExact(t *testing.T) {
	e := newEnv(t)
	gwA, gwB := e.gateway(t, "gwA"), e.gateway(t, "gwB")
	e.route(t, gwA, "alice", "phone")
	e.route(t, gwA, "bob", "phone")
	e.route(t, gwB, "carol", "phone")
	e.route(t, gwB, "dave", "phone")
	e.putMember(t, "g1", "alice", 0, 0)
	e.putMember(t, "g1", "bob", 0, 0)
	// dave is removed exactly at the next event's seq: he sees it, and nothing after.
	daveLeft := e.nextSeq(t)
	e.putMember(t, "g1", "dave", 0, daveLeft)
	e.start(t)

	s1, ev1 := e.msg(t, "g1")
	if s1 != daveLeft {
		t.Fatalf("seq %d, predicted %d", s1, daveLeft)
	}
	gwA.expect(t, eventDelivery(s1, []string{"alice", "bob"}, ev1))
	gwB.expect(t, eventDelivery(s1, []string{"dave"}, ev1))

	// carol is added by an event: she receives the event that adds her, and what follows.
	s2, ev2 := e.publish(t, streams.ChatEvent{Kind: streams.KindMember, ConversationID: "g1",
		Member: &streams.MemberChange{Action: streams.MemberAdded, UserIDs: []string{"carol"}}})
	gwA.expect(t, eventDelivery(s2, []string{"alice", "bob"}, ev2))
	gwB.expect(t, eventDelivery(s2, []string{"carol"}, ev2))

	// bob is removed by an event: he receives his removal, and nothing after.
	s3, ev3 := e.publish(t, streams.ChatEvent{Kind: streams.KindMember, ConversationID: "g1",
		Member: &streams.MemberChange{Action: streams.MemberRemoved, UserIDs: []string{"bob"}}})
	gwA.expect(t, eventDelivery(s3, []string{"alice", "bob"}, ev3))
	gwB.expect(t, eventDelivery(s3, []string{"carol"}, ev3))

	s4, ev4 := e.msg(t, "g1")
	gwA.expect(t, eventDelivery(s4, []string{"alice"}, ev4))
	gwB.expect(t, eventDelivery(s4, []string{"carol"}, ev4))
	gwA.quiet(t, 200*time.Millisecond)
	gwB.quiet(t, 50*time.Millisecond)

	// The store followed the events.
	bob, err := e.store.Member(e.ctx, "g1", "bob")
	if err != nil || bob.LeftSeq != s3 {
		t.Fatalf("bob %+v, %v; want left at %d", bob, err, s3)
	}
	carol, err := e.store.Member(e.ctx, "g1", "carol")
	if err != nil || carol.JoinedSeq != s2-1 || carol.LeftSeq != 0 {
		t.Fatalf("carol %+v, %v; want joined at %d", carol, err, s2-1)
	}
}

// A device that connected (its route written and settled) before an event was published
// receives it: the route barrier runs before the event is routed, or ran within its window. The
// window is wider than the default here, so that most events are routed on a barrier passed
// for an earlier one, before their route was written.
func TestRouteWrittenBeforePublishIsHonoured(t *testing.T) {
	e := newEnv(t)
	window := 30 * time.Millisecond
	e.barrierWindow = &window
	gwA, gwB := e.gateway(t, "gwA"), e.gateway(t, "gwB")
	e.start(t)
	var even, odd []string
	revs := map[string]uint64{}
	// Members are written to the store up front: fanout learns of later membership changes from
	// CHAT's member events, not from the store (see memberCache).
	for i := 0; i < 50; i++ {
		e.putMember(t, "cb", fmt.Sprintf("u%02d", i), 0, 0)
	}
	for i := 0; i < 50; i++ {
		user := fmt.Sprintf("u%02d", i)
		g := gwA
		if i%2 == 1 {
			g = gwB
		}
		revs[user] = e.route(t, g, user, "phone")
		if g == gwA {
			even = append(even, user)
		} else {
			odd = append(odd, user)
		}
		seq, ev := e.msg(t, "cb")
		gwA.expect(t, eventDelivery(seq, even, ev))
		if len(odd) > 0 {
			gwB.expect(t, eventDelivery(seq, odd, ev))
		}
	}
	// Routes deleted before publishing are honoured too: gwA's devices all disconnect.
	for _, u := range even {
		if err := gwA.reg.Delete(e.ctx, u, "phone", revs[u]); err != nil {
			t.Fatal(err)
		}
	}
	e.settle()
	seq, ev := e.msg(t, "cb")
	gwB.expect(t, eventDelivery(seq, odd, ev))
	gwA.quiet(t, 200*time.Millisecond)
	gwB.quiet(t, 50*time.Millisecond)
}

// A chunk that comes within the barrier's window of the last barrier passed is routed on that
// barrier; without a window, every chunk passes one of its own.
func TestTheBarrierServesTheChunksOfItsWindow(t *testing.T) {
	for _, window := range []time.Duration{time.Second, 0} {
		t.Run(window.String(), func(t *testing.T) {
			e := newEnv(t)
			gwA := e.gateway(t, "gwA")
			e.route(t, gwA, "alice", "phone")
			e.putMember(t, "c1", "alice", 0, 0)
			e.barrierWindow = &window
			f := e.start(t)
			began := time.Now()
			const chunks = 20
			for range chunks { // each its own chunk: the next is published once this one is delivered
				seq, ev := e.msg(t, "c1")
				gwA.expect(t, eventDelivery(seq, []string{"alice"}, ev))
			}
			// With a window, one barrier each window the chunks took (one, unless the machine
			// is very slow); without, one a chunk.
			most := int64(chunks)
			if window > 0 {
				most = 1 + int64(time.Since(began)/window)
			}
			p, r := f.barrier.passed.Load(), f.barrier.reused.Load()
			if p+r != chunks || p > most || window == 0 && p != chunks {
				t.Fatalf("%d chunks: barriers passed %d and reused %d; want at most %d passed", chunks, p, r, most)
			}
		})
	}
}

func TestMalformedEventsDoNotBlock(t *testing.T) {
	e := newEnv(t)
	gwA := e.gateway(t, "gwA")
	e.route(t, gwA, "alice", "phone")
	e.putMember(t, "c1", "alice", 0, 0)
	e.start(t)
	for _, raw := range []string{`{garbage`, `{"v":2,"kind":"msg","conversation_id":"c1","message_id":"m"}`, `{"v":1,"kind":"msg","conversation_id":"c1"}`} {
		if _, err := e.js.Publish(e.ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.js.Publish(e.ctx, "chat.c1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	seq, ev := e.msg(t, "c1")
	gwA.expect(t, eventDelivery(seq, []string{"alice"}, ev))
	gwA.quiet(t, 200*time.Millisecond)
	cons, err := e.js.Consumer(e.ctx, streams.ChatStream, streams.FanoutConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ci, err := cons.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.AckFloor.Stream == seq && ci.NumAckPending == 0 && ci.NumRedelivered == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fanout consumer: ack floor %d, ack pending %d, redelivered %d; want %d, 0, 0",
				ci.AckFloor.Stream, ci.NumAckPending, ci.NumRedelivered, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A user whose devices are spread over many gateways is named once in each gateway's delivery.
func TestUserOnManyGatewaysNamedOncePerGateway(t *testing.T) {
	e := newEnv(t)
	var gws []*gateway
	for g := 0; g < 6; g++ {
		gw := e.gateway(t, fmt.Sprintf("gw%d", g))
		gws = append(gws, gw)
		e.route(t, gw, "alice", gw.id+"-phone")
		e.route(t, gw, "alice", gw.id+"-laptop")
	}
	e.putMember(t, "c1", "alice", 0, 0)
	e.start(t)
	seq, ev := e.msg(t, "c1")
	var problems []string
	for _, gw := range gws {
		m, err := gw.sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v", gw.id, err)
		}
		d, err := streams.DecodeDelivery(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if want := eventDelivery(seq, []string{"alice"}, ev); d.Seq != seq || !bytes.Equal(d.Frame, want.Frame) || !reflect.DeepEqual(d.Users, want.Users) {
			problems = append(problems, fmt.Sprintf("%s got seq %d users %v", gw.id, d.Seq, d.Users))
		}
	}
	for _, gw := range gws {
		if m, err := gw.sub.NextMsg(50 * time.Millisecond); err == nil {
			problems = append(problems, fmt.Sprintf("%s got a second delivery %s", gw.id, m.Data))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("alice (2 devices on each of 6 gateways), want one delivery naming [alice] per gateway:\n  %s",
			strings.Join(problems, "\n  "))
	}
}

// frame reads the next delivery of g and checks it carries a ready-made frame (no timeline event)
// for exactly users; it returns the frame.
func (g *gateway) frame(t *testing.T, users ...string) []byte {
	t.Helper()
	m, err := g.sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: waiting for a frame for %v: %v", g.id, users, err)
	}
	d, err := streams.DecodeDelivery(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Seq != 0 || d.Conversation != "" || !reflect.DeepEqual(d.Users, users) || len(d.Frame) == 0 {
		t.Fatalf("%s: got %s, want a frame for %v", g.id, m.Data, users)
	}
	return d.Frame
}

func TestReceiptsRelayedToReaderAndDirectPeer(t *testing.T) {
	e := newEnv(t)
	gwA, gwB := e.gateway(t, "gwA"), e.gateway(t, "gwB")
	e.route(t, gwA, "alice", "phone")
	e.route(t, gwB, "alice", "laptop")
	e.route(t, gwB, "bob", "phone")
	e.route(t, gwA, "carol", "phone")
	e.putConversation(t, "dm", store.Direct)
	e.putMember(t, "dm", "alice", 0, 0)
	e.putMember(t, "dm", "bob", 0, 0)
	e.putConversation(t, "grp", store.Group)
	for _, u := range []string{"alice", "bob", "carol"} {
		e.putMember(t, "grp", u, 0, 0)
	}
	e.start(t)

	// Direct: alice's own devices and bob.
	e.publish(t, streams.ChatEvent{Kind: streams.KindRead, ConversationID: "dm", SenderID: "alice", SenderDevice: "phone", UpTo: 7})
	want := `{"type":"receipt","conversation_id":"dm","user_id":"alice","device_id":"phone","kind":"read","up_to":7}`
	if got := gwA.frame(t, "alice"); string(got) != want {
		t.Fatalf("gwA frame %s\nwant %s", got, want)
	}
	if got := gwB.frame(t, "alice", "bob"); string(got) != want {
		t.Fatalf("gwB frame %s\nwant %s", got, want)
	}
	// Group: only the reader's own devices.
	e.publish(t, streams.ChatEvent{Kind: streams.KindDelivered, ConversationID: "grp", SenderID: "bob", SenderDevice: "phone", UpTo: 3})
	want = `{"type":"receipt","conversation_id":"grp","user_id":"bob","device_id":"phone","kind":"delivered","up_to":3}`
	if got := gwB.frame(t, "bob"); string(got) != want {
		t.Fatalf("gwB frame %s\nwant %s", got, want)
	}
	gwA.quiet(t, 200*time.Millisecond)
	gwB.quiet(t, 50*time.Millisecond)
}

// A receipt naming a conversation the store does not know can never be routed; it must not hold
// up the events behind it (fanout retries failures in place, in order).
func TestReceiptForUnknownConversationDoesNotBlock(t *testing.T) {
	e := newEnv(t)
	e.stopTimeout = time.Second
	gwA := e.gateway(t, "gwA")
	e.route(t, gwA, "alice", "phone")
	e.putConversation(t, "c1", store.Group)
	e.putMember(t, "c1", "alice", 0, 0)
	e.start(t)
	e.publish(t, streams.ChatEvent{Kind: streams.KindRead, ConversationID: "gone", SenderID: "alice", UpTo: 1})
	seq, ev := e.msg(t, "c1")
	gwA.expect(t, eventDelivery(seq, []string{"alice"}, ev))
	// The stray receipt itself was terminated, not left pending.
	cons, err := e.js.Consumer(e.ctx, streams.ChatStream, streams.FanoutConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		ci, err := cons.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.AckFloor.Stream == seq && ci.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fanout consumer: ack floor %d, ack pending %d; want %d, 0", ci.AckFloor.Stream, ci.NumAckPending, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTypingRelayedToOtherMembers(t *testing.T) {
	e := newEnv(t)
	gwA, gwB := e.gateway(t, "gwA"), e.gateway(t, "gwB")
	e.route(t, gwA, "alice", "phone")
	e.route(t, gwB, "bob", "phone")
	e.route(t, gwB, "carol", "phone")
	e.route(t, gwA, "erin", "phone") // not a member
	e.putConversation(t, "grp", store.Group)
	e.putMember(t, "grp", "alice", 0, 0)
	e.putMember(t, "grp", "bob", 0, 0)
	e.putMember(t, "grp", "carol", 0, 5) // left
	e.start(t)
	data, _ := json.Marshal(streams.Typing{ConversationID: "grp", UserID: "alice", DeviceID: "phone", State: "start"})
	if err := e.nc.Publish(streams.TypingSubject("grp"), data); err != nil {
		t.Fatal(err)
	}
	want := `{"type":"typing","conversation_id":"grp","user_id":"alice","state":"start","expires_in_ms":6000}`
	if got := gwB.frame(t, "bob"); string(got) != want {
		t.Fatalf("typing frame %s\nwant %s", got, want)
	}
	gwA.quiet(t, 200*time.Millisecond)
	gwB.quiet(t, 50*time.Millisecond)
}
