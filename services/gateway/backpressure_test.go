package gateway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// TestSendsWaitWhileDeliveryIsBehind: natter runs without fanout and the test plays it, acking
// the fanout consumer at a pace it chooses. A client pipelines sends as fast as it can. The
// gateway must accept no faster than delivery goes: no ack may run more than MaxDeliveryLag
// ahead of the consumer's ack floor, plus the sends one socket may have in flight when it looks
// (its publish window) and the one that looks. When delivery stops
// altogether, the gateway notices within one wait and accepts again: a stalled fanout must not
// stop sends.
func TestSendsWaitWhileDeliveryIsBehind(t *testing.T) {
	const lag, window, stallWait = 10, 4, 3 * time.Second
	s := apptest.Start(t, func(c *app.Config) {
		c.Targets = []string{app.TargetGateway, app.TargetAPI, app.TargetPersister}
		c.Gateway.FramesPerSecond, c.Gateway.Burst = 1e6, 1e6
		// A wait long enough for a test process starved for a while (-race, parallel packages on
		// two cores): a send goes on when its wait ends, whether delivery moved meanwhile or not
		// (then it is also marked stalled). Runs that saw the gateway 16 ahead of a delivery at 0
		// (one CI run, 1 in 120 beside busy loops) were not slow: a publish's ack freed its
		// windows before it raised the gateway's last acknowledged seq, so a send could pass
		// its wait against a stale one (fixed in onReply).
		c.Gateway.MaxDeliveryLag, c.Gateway.SocketPublishWindow, c.Gateway.DeliveryLagWait = lag, window, stallWait
	})
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "phone", nil)

	// The test is fanout: it pulls the fanout consumer and acks five events every 50 ms.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, streams.ChatStream, streams.FanoutConsumer)
	if err != nil {
		t.Fatal(err)
	}
	var acked atomic.Uint64 // the highest seq the test acked (events are acked in order)
	var deliver atomic.Bool
	deliver.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			if !deliver.Load() {
				continue
			}
			batch, err := cons.Fetch(5, jetstream.FetchMaxWait(100*time.Millisecond), jetstream.FetchPriorityGroup(streams.FanoutGroup))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				if meta, err := m.Metadata(); err == nil {
					acked.Store(meta.Sequence.Stream) // before the ack: the server's floor is never ahead of it
					_ = m.DoubleAck(ctx)
				}
			}
		}
	}()
	defer func() { cancel(); <-done }()

	const n = 60
	for i := range n {
		a.Send(send(conv, fmt.Sprintf("m%d", i), "flat out"))
	}
	for range n {
		ack := a.NextOf(protocol.TypeAck, wait)
		if floor := acked.Load(); ack.Seq > floor+lag+window+1 {
			t.Fatalf("ack of seq %d while delivery was at %d: the gateway ran %d ahead, more than %d + a window of %d + 1",
				ack.Seq, floor, ack.Seq-floor, lag, window)
		}
	}

	// Delivery stops: after one wait without progress, sends go through unheld.
	deliver.Store(false)
	start := time.Now()
	for i := range n {
		a.Send(send(conv, fmt.Sprintf("stalled%d", i), "nobody delivers"))
	}
	for range n {
		a.NextOf(protocol.TypeAck, wait)
	}
	t.Logf("with delivery stalled, %d sends were acked in %s (one wait is %s)", n, time.Since(start).Round(time.Millisecond), stallWait)
}
