package gateway

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/streams"
)

// floor is a consumer's ack floor, shared by every session of the gateway: a reconnect storm
// asks JetStream at most once per floorRefresh, not once per socket.
type floor struct {
	mu      sync.Mutex
	value   uint64
	fetched time.Time
}

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
		if g.membershipFloor(ctx, head) >= head {
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

// membershipFloor returns fanout's ack floor, asking JetStream again when the known value is
// below head and older than floorRefresh.
func (g *Gateway) membershipFloor(ctx context.Context, head uint64) uint64 {
	f := &g.membership
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value >= head || time.Since(f.fetched) < floorRefresh {
		return f.value
	}
	f.fetched = time.Now()
	cons, err := g.deps.JS.Consumer(ctx, streams.ChatStream, g.cfg.MembershipConsumer) // one request: its info
	if err != nil {
		return f.value
	}
	f.value = max(f.value, cons.CachedInfo().AckFloor.Stream)
	return f.value
}
