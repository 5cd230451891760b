package gateway

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
)

// floorRefresh is how often the gateway asks for a fanout consumer's ack floor at most, however
// many sockets and sends wait on it (consumer.Floor).
const floorRefresh = 20 * time.Millisecond

// awaitMembership waits until every membership change up to head is in the store, so that the
// catch-up's list of the user's conversations includes one they were added to at or below head.
// (The API applies a change to the store right after publishing it; a catch-up that read head
// in between would replay nothing of the new conversation, while its live event, at or below
// head, is held back and dropped: the device would never get it.) fanout applies every change in
// stream order before it acks, so its consumer's ack floor is the mark. The wait is bounded by
// MembershipWait: without a running fanout, catch-up goes on after it.
func (g *Gateway) awaitMembership(ctx context.Context, head uint64) {
	deadline := time.Now().Add(g.cfg.MembershipWait)
	for {
		if at, _ := g.membership.Read(ctx, g.deps.JS, head); at >= head { // an error: ask again
			return
		}
		if time.Now().After(deadline) {
			g.log.Debug("membership changes not confirmed up to the catch-up head; going on", zap.Uint64("head", head))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(floorRefresh):
		}
	}
}

// awaitDelivery is the gateway's backpressure from delivery to its read loops: a send waits
// while the fanout partition that delivers to this gateway is more than MaxDeliveryLag events
// behind the gateway's latest acknowledged send, so that a gateway accepts no faster than its
// events are delivered, instead of acking into a queue that grows without bound. The wait is
// bounded by DeliveryLagWait; a partition whose floor did not move during a whole wait counts as
// stalled (fanout down, say), and sends go on unheld until it moves again — delivery is down
// then, not slow, and messages stay durable and reach devices through sync.
func (g *Gateway) awaitDelivery(ctx context.Context) {
	lag := g.cfg.MaxDeliveryLag
	last := g.pub.last.Load()
	if lag == 0 || last <= lag {
		return
	}
	want := last - lag
	d := &g.delivery
	at, _ := d.Read(ctx, g.deps.JS, want) // an error keeps the known floor
	g.met.deliveryLag.Set(float64(last - min(at, last)))
	if at >= want || d.stalledAt(at) {
		return
	}
	start, from := time.Now(), at
	g.met.backpressureWaits.Inc()
	defer func() { g.met.backpressureSeconds.Add(time.Since(start).Seconds()) }()
	for time.Since(start) < g.cfg.DeliveryLagWait {
		select {
		case <-ctx.Done():
			return
		case <-time.After(floorRefresh):
		}
		if at, _ = d.Read(ctx, g.deps.JS, want); at >= want {
			return
		}
	}
	if at == from {
		d.stall(at)
		g.log.Warn("fanout delivers nothing to this gateway; sends are no longer held for it", zap.String("consumer", d.Consumer),
			zap.Uint64("ack_floor", at), zap.Uint64("last_send", last))
	}
}

// deliveryFloor is the ack floor of the fanout partition delivering to this gateway, and where
// it was when it was last found stalled.
type deliveryFloor struct {
	consumer.Floor
	smu     sync.Mutex
	stalled uint64 // the floor value seen not moving for a whole wait; 0: none
	isStall bool
}

func (d *deliveryFloor) stall(at uint64) {
	d.smu.Lock()
	d.stalled, d.isStall = at, true
	d.smu.Unlock()
}

// stalledAt reports whether the floor is still where it was found stalled.
func (d *deliveryFloor) stalledAt(at uint64) bool {
	d.smu.Lock()
	defer d.smu.Unlock()
	if d.isStall && at != d.stalled {
		d.isStall = false // it moved: delivery is back, and so is the backpressure
	}
	return d.isStall
}
