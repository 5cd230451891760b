package fanout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// barrier is the routes and consent barrier of this instance's partitions: before a chunk is
// routed, the mirrors hold every route and consent event written before the barrier began. One
// that began within window of now serves as well (Config.BarrierWindow: writers wait that
// long before they rely on a write, streams.Settle), so at a trickle of single-event chunks the two round trips
// are paid once a window, not once an event.
type barrier struct {
	window time.Duration
	sync   func(ctx context.Context) error // one round trip to each mirror's stream

	mu    sync.Mutex
	began time.Time // when the last barrier passed began (its monotonic reading); zero: none

	passed, reused atomic.Int64 // for tests
}

// pass returns once the mirrors hold everything written before now − window.
func (b *barrier) pass(ctx context.Context) error {
	b.mu.Lock()
	fresh := !b.began.IsZero() && time.Since(b.began) <= b.window
	b.mu.Unlock()
	if fresh {
		b.reused.Add(1)
		return nil
	}
	began := time.Now()
	if err := b.sync(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	if began.After(b.began) { // partitions pass barriers side by side
		b.began = began
	}
	b.mu.Unlock()
	b.passed.Add(1)
	return nil
}

// syncMirrors is the barrier's round trips: routes and consent, each as of now, overlapped.
func (f *Fanout) syncMirrors(ctx context.Context) error {
	var routesErr error
	var wg sync.WaitGroup
	wg.Go(func() { routesErr = f.routes.Sync(ctx, f.cfg.RouteBarrierWait) })
	consentErr := f.consent.Sync(ctx, f.cfg.RouteBarrierWait)
	wg.Wait()
	return errors.Join(routesErr, consentErr)
}
