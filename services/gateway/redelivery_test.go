package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// TestNothingAtOrBelowSyncedComesLive: fanout may deliver events again (a restarted fanout whose
// acknowledgements never reached the disk does). A socket that was told synced at c must never
// get an event at or below c — not even of a conversation it got nothing of since it connected
// — and its live events stay in order. A client that keeps the seq of each frame as its cursor
// would otherwise move it backwards.
func TestNothingAtOrBelowSyncedComesLive(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "phone", nil)
	var events []streams.ChatEvent
	var seqs []uint64
	for i := range 5 {
		a.Send(send(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("before %d", i)))
		ack := a.NextOf(protocol.TypeAck, wait)
		seqs = append(seqs, ack.Seq)
		events = append(events, streams.ChatEvent{V: streams.Version, Kind: streams.KindMsg, ConversationID: conv,
			MessageID: ack.MessageID, SenderID: alice.ID, SenderDevice: "phone", ClientMsgID: fmt.Sprintf("m%d", i), Text: fmt.Sprintf("before %d", i)})
	}
	cursor := seqs[len(seqs)-1]

	// One device comes back with its cursor, another without one: both are synced at the head.
	withCursor, without := dial(s, bob, "laptop", &cursor), dial(s, bob, "tablet", nil)
	for i, ev := range events { // what a fanout that lost its acknowledgements sends again
		if err := streams.PublishDelivery(s.Run.NC, s.Run.Gateway.ID(), eventDelivery(seqs[i], []string{bob.ID}, ev)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Run.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	a.Send(send(conv, "after", "after the redeliveries"))
	next := a.NextOf(protocol.TypeAck, wait).Seq
	for name, ws := range map[string]*apptest.WS{"laptop (cursor)": withCursor, "tablet (no cursor)": without} {
		if f := ws.NextOf(protocol.TypeMessage, wait); f.Seq != next {
			t.Errorf("%s, synced at %d, got seq %d live before seq %d", name, cursor, f.Seq, next)
		}
		if f, ok := ws.TryNextOf(protocol.TypeMessage, 300*time.Millisecond); ok {
			t.Errorf("%s got seq %d after seq %d", name, f.Seq, next)
		}
	}
}

// TestResyncSparesSocketsCaughtUpPastTheGap: a resync that names where fanout's gap ends closes
// only the sockets that may miss something below it. A socket whose catch-up read past the gap
// has every event in it and stays open; one that did not is closed with the resync code.
func TestResyncSparesSocketsCaughtUpPastTheGap(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "phone", nil)
	var head uint64
	for i := range 3 {
		a.Send(send(conv, fmt.Sprintf("m%d", i), "hi"))
		head = a.NextOf(protocol.TypeAck, wait).Seq
	}
	b, a2 := dial(s, bob, "laptop", nil), dial(s, alice, "tablet", nil) // synced at head

	resync := func(below uint64) {
		t.Helper()
		if err := streams.PublishDelivery(s.Run.NC, s.Run.Gateway.ID(), streams.Delivery{Users: []string{}, Resync: true, ResyncBelow: below}); err != nil {
			t.Fatal(err)
		}
	}
	resync(head + 1) // the gap is at or below head: b and a2 have it all; a, synced at 0, does not
	if got := a.CloseStatus(wait); got != websocket.StatusCode(protocol.CloseResync) {
		t.Fatalf("a closed with %d, want %d (resync)", got, protocol.CloseResync)
	}
	a2.Send(send(conv, "live", "still here"))
	live := a2.NextOf(protocol.TypeAck, wait).Seq
	if f := b.NextOf(protocol.TypeMessage, wait); f.Seq != live {
		t.Fatalf("b got seq %d, want %d live after a resync below its head", f.Seq, live)
	}
	resync(live + 2) // seq live+1 may come late: b, caught up to head only, must sync
	if got := b.CloseStatus(wait); got != websocket.StatusCode(protocol.CloseResync) {
		t.Fatalf("b closed with %d, want %d (resync)", got, protocol.CloseResync)
	}
}

// TestABurstDoesNotCloseAClientThatReads: a burst of deliveries larger than the send queue
// reaches a socket whose client reads. Its writer falls behind for a moment, but the client is
// not slow: the socket must stay open and get every frame, in order. (A client that does not
// read at all is still closed: TestSlowClientIsClosedAndOthersUnaffected.)
func TestABurstDoesNotCloseAClientThatReads(t *testing.T) {
	const queue, burst = 16, 2000
	s := apptest.Start(t, func(c *app.Config) { c.Gateway.SendQueue, c.Gateway.HardSendQueue = queue, 4*burst })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	b := dial(s, bob, "laptop", nil)
	for i := range burst {
		seq := uint64(1000 + i)
		ev := streams.ChatEvent{V: streams.Version, Kind: streams.KindMsg, ConversationID: conv, MessageID: fmt.Sprintf("m%d", i), SenderID: alice.ID, Text: "burst"}
		if err := streams.PublishDelivery(s.Run.NC, s.Run.Gateway.ID(), eventDelivery(seq, []string{bob.ID}, ev)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		if f := b.NextOf(protocol.TypeMessage, wait); f.Seq != uint64(1000+i) {
			t.Fatalf("frame %d of the burst is seq %d, want %d", i, f.Seq, 1000+i)
		}
	}
}

// TestALostDeliveryResyncsTheSocketsBehindIt: fanout numbers what one partition run sends a
// gateway. A number skipped is a delivery lost in transit (a NATS node died with it): before
// the delivery after the hole reaches anyone, every socket not caught up past the hole is
// closed with the resync code, so no client's cursor moves over the lost event. Deliveries that
// follow on close nothing.
func TestALostDeliveryResyncsTheSocketsBehindIt(t *testing.T) {
	s, bob, head, a, b, deliver := numberedSetup(t)
	// In order: 1 and 2 reach both sockets and close nothing.
	deliver(7, 1, head+1, false)
	deliver(7, 2, head+2, false)
	expectLive(t, map[string]*apptest.WS{"a": a, "b": b}, head+1, head+2)
	// 3 is lost. 4 comes at head+4, past the hole: both sockets were only caught up to head, so
	// neither may see it live; each must resync and read head+3 from its cursor.
	deliver(7, 4, head+4, false)
	expectResync(t, map[string]*apptest.WS{"a": a, "b": b})
	// The chain goes on from 4 without closing anything.
	tablet := dial(s, bob, "tablet", nil)
	deliver(7, 5, head+5, false)
	expectLive(t, map[string]*apptest.WS{"tablet": tablet}, head+5)
}

// TestDeliveriesMoveToAnotherRunOnlyAfterTheLastEnded: when a partition moves to another fanout
// run, the new run's deliveries can overtake the old run's last ones (other connections, other
// NATS nodes). They follow on only if the old run said it ended — it drained, and what it sent
// came before its end; otherwise the sockets not caught up past the switch resync first.
func TestDeliveriesMoveToAnotherRunOnlyAfterTheLastEnded(t *testing.T) {
	_, _, head, a, b, deliver := numberedSetup(t)
	deliver(7, 1, head+1, false)
	deliver(7, 2, head+2, true) // run 7 ended: everything below head+2 was sent
	deliver(8, 1, head+2, false)
	expectLive(t, map[string]*apptest.WS{"a": a, "b": b}, head+1, head+2)
	deliver(9, 1, head+3, false) // run 8 did not end: an event of it may still come
	expectResync(t, map[string]*apptest.WS{"a": a, "b": b})
}

// TestAProbeOverAHoleResyncsEverySocket: after its connection to NATS came back, fanout sends
// each gateway an empty next link of its chain (a probe). One that shows a hole closes every
// socket with the resync code — a probe names no seq — and delivers nothing; one that follows
// on closes nothing.
func TestAProbeOverAHoleResyncsEverySocket(t *testing.T) {
	s, _, head, a, b, deliver := numberedSetup(t)
	probe := func(n uint64) {
		t.Helper()
		if err := streams.PublishDelivery(s.Run.NC, s.Run.Gateway.ID(), streams.Delivery{Users: []string{}, Chain: 7, N: n}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(7, 1, head+1, false)
	probe(2) // follows on
	deliver(7, 3, head+2, false)
	expectLive(t, map[string]*apptest.WS{"a": a, "b": b}, head+1, head+2)
	probe(5) // 4 was lost
	expectResync(t, map[string]*apptest.WS{"a": a, "b": b})
}

// numberedSetup starts a system with alice's phone (a) and bob's laptop (b), both caught up to
// head (the seq of a message the real fanout delivered before them), and returns a func that delivers a message at seq to both as link n of chain (or, end
// set, chain's end below seq).
func numberedSetup(t *testing.T) (s *apptest.System, bob apptest.User, head uint64, a, b *apptest.WS, deliver func(chain, n, seq uint64, end bool)) {
	s = apptest.Start(t)
	alice := s.SignUp("alice")
	bob = s.SignUp("bob")
	conv := s.Direct(alice, bob)
	sender := dial(s, alice, "laptop", nil)
	sender.Send(send(conv, "m0", "first"))
	head = sender.NextOf(protocol.TypeAck, wait).Seq
	// The real fanout's delivery of head is on its own chain: it must be through before the
	// test's chains begin, or the gateway sees that chain come after them and resyncs (a switch
	// of runs without an end). The sender's own device gets head live once it is through.
	if f := sender.NextOf(protocol.TypeMessage, wait); f.Seq != head {
		t.Fatalf("the sender got seq %d live, want its own message at %d", f.Seq, head)
	}
	a, b = dial(s, alice, "phone", nil), dial(s, bob, "laptop", nil) // synced at head
	deliver = func(chain, n, seq uint64, end bool) {
		t.Helper()
		d := streams.Delivery{Users: []string{}, Seq: seq, End: end}
		if !end {
			d = eventDelivery(seq, []string{alice.ID, bob.ID}, streams.ChatEvent{V: streams.Version, Kind: streams.KindMsg, ConversationID: conv,
				MessageID: fmt.Sprintf("x%d", seq), SenderID: alice.ID, SenderDevice: "phone", ClientMsgID: fmt.Sprintf("x%d", seq), Text: "numbered"})
		}
		d.Chain, d.N = chain, n
		if err := streams.PublishDelivery(s.Run.NC, s.Run.Gateway.ID(), d); err != nil {
			t.Fatal(err)
		}
	}
	return s, bob, head, a, b, deliver
}

// expectLive checks that each socket gets the messages at seqs live, in order.
func expectLive(t *testing.T, sockets map[string]*apptest.WS, seqs ...uint64) {
	t.Helper()
	for name, ws := range sockets {
		for _, want := range seqs {
			if f := ws.NextOf(protocol.TypeMessage, wait); f.Seq != want {
				t.Fatalf("%s got seq %d, want %d", name, f.Seq, want)
			}
		}
	}
}

// expectResync checks that each socket is closed with the resync code, with no message first.
func expectResync(t *testing.T, sockets map[string]*apptest.WS) {
	t.Helper()
	for name, ws := range sockets {
		deadline := time.After(wait)
	frames:
		for {
			select {
			case f, ok := <-ws.Frames:
				if !ok {
					break frames
				}
				if f.Type == protocol.TypeMessage {
					t.Fatalf("%s got seq %d live, where it should have resynced", name, f.Seq)
				}
			case <-deadline:
				t.Fatalf("%s still open %s after a break in its deliveries", name, wait)
			}
		}
		if got := ws.CloseStatus(wait); got != websocket.StatusCode(protocol.CloseResync) || !protocol.CloseCode(got).Reconnect() {
			t.Fatalf("%s closed with %d, want %d (resync)", name, got, protocol.CloseResync)
		}
	}
}

// eventDelivery is fanout's delivery of the timeline event ev at seq to users.
func eventDelivery(seq uint64, users []string, ev streams.ChatEvent) streams.Delivery {
	return streams.Delivery{Seq: seq, Conversation: ev.ConversationID, Users: users, Frame: mustJSON(streams.EventFromChat(seq, ev))}
}
