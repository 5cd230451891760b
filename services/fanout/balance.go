package fanout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// balance keeps this instance's entry in the fanouts bucket fresh and its share of the
// partitions current, every Liveness/3, until Stop.
func (f *Fanout) balance() {
	defer close(f.done)
	tick := time.NewTicker(f.cfg.Liveness / 3)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		if err := f.rebalance(context.Background()); err != nil {
			f.log.Warn("rebalance fanout partitions", zap.Error(err))
		}
	}
}

// rebalance refreshes this instance's liveness entry, reads which instances are live and starts
// or stops partitions so that this instance consumes exactly its share. Views of the live set
// may differ for a moment between instances; the pinned priority group keeps every partition on
// one instance regardless, and a partition wanted by two waits for the pin.
func (f *Fanout) rebalance(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Liveness+10*time.Second)
	defer cancel()
	if _, err := f.members.Put(ctx, f.cfg.InstanceID, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("refresh liveness: %w", err) // keep what we have: the pins hold
	}
	keys, err := f.members.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list live instances: %w", err)
	}
	defer func() { _ = keys.Stop() }() // after a complete listing it only says "already stopped"
	var live []string
	for k := range keys.Keys() {
		live = append(live, k)
	}
	want := assign(f.cfg.Partitions, live, f.cfg.InstanceID)
	owned := f.owned()
	var changed bool
	for _, p := range owned {
		if !slices.Contains(want, p) {
			changed = true
			if err := f.stopPartition(ctx, p); err != nil {
				f.log.Warn("release partition", zap.Int("partition", p), zap.Error(err))
			}
		}
	}
	for _, p := range want {
		if !slices.Contains(owned, p) {
			changed = true
			if err := f.startPartition(ctx, p); err != nil {
				return fmt.Errorf("take partition %d: %w", p, err)
			}
		}
	}
	if changed {
		f.log.Info("fanout partitions", zap.Ints("mine", want), zap.Strings("live", live))
	}
	return nil
}

// assign is the partitions of n that instance me consumes when the live instances are live:
// round robin over the sorted ids, so the shares differ by at most one.
func assign(n int, live []string, me string) []int {
	live = slices.Clone(live)
	if !slices.Contains(live, me) {
		live = append(live, me)
	}
	slices.Sort(live)
	i := slices.Index(live, me)
	var mine []int
	for p := i; p < n; p += len(live) {
		mine = append(mine, p)
	}
	return mine
}
