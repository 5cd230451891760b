package streams

import (
	"context"
	"fmt"
	"time"
)

// DefaultBarrierWindow is Options.BarrierWindow's default: how long fanout's route and consent
// barrier serves. Before routing a chunk of CHAT events, fanout makes its mirrors of the routes
// bucket and of CONSENT hold everything written before the barrier began (one round trip to
// each); a chunk that comes within the window of that beginning is routed on the same barrier,
// so at a steady trickle of events fanout pays a barrier once a window instead of once an event.
//
// The contract for writers: fanout routes every CHAT event stored a window or more after a
// route or a consent event was stored by that write (Settle). A gateway settles a route before
// it reads the head a catch-up replays to, and the API settles a consent change before it
// answers. So a writer's window must be at least every fanout's: every process of a deployment
// takes the same Options.BarrierWindow.
// Durations are measured on each process's monotonic clock, so no clocks need to agree; a
// component whose clock stops while it runs (a suspended machine) is outside the contract.
// Gateways and the API of an older version do not settle: upgrade them before fanout.
const DefaultBarrierWindow = 5 * time.Millisecond

// MaxBarrierWindow bounds Options.BarrierWindow: writers wait it out before they answer.
const MaxBarrierWindow = time.Second

// ValidBarrierWindow checks a barrier window: 0 (a barrier for every chunk, no wait) to
// MaxBarrierWindow.
func ValidBarrierWindow(d time.Duration) error {
	if d < 0 || d > MaxBarrierWindow {
		return fmt.Errorf("barrier window %s not in 0..%s", d, MaxBarrierWindow)
	}
	return nil
}

// Settle returns window after stored, a time taken once a write was acknowledged as stored, or
// when ctx ends, with its error. A writer calls it with its Options.BarrierWindow before it
// relies on fanout routing by the write; work done meanwhile shortens the wait.
func Settle(ctx context.Context, stored time.Time, window time.Duration) error {
	wait := time.Until(stored.Add(window))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
