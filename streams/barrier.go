package streams

import (
	"context"
	"time"
)

// BarrierWindow is how long fanout's route and consent barrier serves. Before routing a chunk
// of CHAT events, fanout makes its mirrors of the routes bucket and of CONSENT hold everything
// written before the barrier began (one round trip to each); a chunk that comes within
// BarrierWindow of that beginning is routed on the same barrier, so at a steady trickle of
// events fanout pays a barrier every BarrierWindow instead of one per event.
//
// The contract for writers: fanout routes every CHAT event stored BarrierWindow or more after a
// route or a consent event was stored by that write (Settle). A gateway settles a route before
// it reads the head a catch-up replays to, and the API settles a consent change before it
// answers.
// Durations are measured on each process's monotonic clock, so no clocks need to agree; a
// component whose clock stops while it runs (a suspended machine) is outside the contract.
// Gateways and the API of an older version do not settle: upgrade them before fanout.
const BarrierWindow = 5 * time.Millisecond

// Settle returns BarrierWindow after stored, a time taken once a write was acknowledged as
// stored, or when ctx ends, with its error. A writer calls it before it relies on fanout
// routing by the write; work done meanwhile shortens the wait.
func Settle(ctx context.Context, stored time.Time) error {
	wait := time.Until(stored.Add(BarrierWindow))
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
