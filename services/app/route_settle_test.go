package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// A connecting device's catch-up replays every event stored less than the barrier window after
// its route was stored: the gateway reads the catch-up's head only once the route has settled,
// because fanout may route such events on a barrier that began before the route was written.
// The window is widened to a second so that the session's own registration work (tens of
// milliseconds, more under the race detector) cannot stand in for the wait; without the
// gateway's wait the head comes long before the window's end and this fails.
func TestACatchUpReplaysWhatWasStoredBeforeItsRouteSettled(t *testing.T) {
	const window = time.Second
	s := apptest.Start(t, func(c *app.Config) { c.Streams.BarrierWindow = window })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := js.KeyValue(ctx, streams.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	chat, err := js.Stream(ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := routes.Watch(ctx, streams.RouteKey(bob.ID, "tablet"), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Stop() }()

	sender := live(s, alice, "phone")
	zero := uint64(0)
	tablet := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "tablet", &zero))
	var routed time.Time // when the route was stored, by the server's clock
	for routed.IsZero() {
		select {
		case e := <-watch.Updates():
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				routed = e.Created()
			}
		case <-ctx.Done():
			t.Fatal("the tablet's route was never stored")
		}
	}

	// Messages every 20 ms from the route's storing until past the window's end.
	stored := map[uint64]time.Time{} // seq -> when CHAT stored it, by the same server clock
	for i := 0; time.Since(routed) < window+300*time.Millisecond; i++ {
		ack := sendText(sender, conv, fmt.Sprintf("m%03d", i), "hello")
		if ack.Type != protocol.TypeAck {
			t.Fatalf("send %d: %+v", i, ack)
		}
		m, err := chat.GetMsg(ctx, ack.Seq)
		if err != nil {
			t.Fatal(err)
		}
		stored[ack.Seq] = m.Time
		time.Sleep(20 * time.Millisecond)
	}

	// Read until every message and the synced frame came: when the head was read after the last
	// send (a busy machine), all of them are replayed before the synced frame.
	head, got := uint64(0), map[uint64]int{}
	for len(got) < len(stored) || head == 0 {
		f := tablet.NextOfAny(wait, protocol.TypeSynced, protocol.TypeMessage)
		if f.Type == protocol.TypeSynced {
			head = f.Cursor
		} else if _, ok := stored[f.Seq]; ok {
			got[f.Seq]++
		}
	}
	within := 0
	for seq, at := range stored {
		if got[seq] != 1 {
			t.Errorf("seq %d delivered %d times", seq, got[seq])
		}
		if at.Sub(routed) < window {
			within++
			if seq > head {
				t.Errorf("seq %d stored %s after the route, within the window %s, is above the catch-up's head %d",
					seq, at.Sub(routed).Round(time.Millisecond), window, head)
			}
		}
	}
	if within == 0 || within == len(stored) {
		t.Fatalf("%d of %d messages stored within the window: the test did not straddle its end", within, len(stored))
	}
}
