package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/streams"
)

// balance keeps this instance's share of the partitions current, every Liveness/5, until Stop.
func (f *Fanout) balance() {
	defer f.loops.Done()
	f.every(func() {
		if err := f.rebalance(context.Background()); err != nil {
			f.log.Warn("rebalance fanout partitions", zap.Error(err))
		}
	})
}

// heartbeat keeps this instance's entry in the fanouts bucket fresh, every Liveness/5, until
// Stop. It is a loop of its own: a rebalance that drains a partition can take longer than the
// liveness, and the others must not take this instance for gone meanwhile.
//
// It also probes the gateways' delivery chains after this instance's connection to NATS came
// back (partition.probe).
func (f *Fanout) heartbeat() {
	defer f.loops.Done()
	reconnects := f.deps.NC.Stats().Reconnects
	f.every(func() {
		ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Liveness)
		defer cancel()
		if err := f.refresh(ctx); err != nil {
			f.log.Debug("refresh fanout liveness", zap.Error(err)) // the rebalance says when it matters
		}
		if r := f.deps.NC.Stats().Reconnects; r != reconnects {
			reconnects = r
			for _, part := range f.partitions() {
				part.probe()
			}
		}
	})
}

// every runs do every Liveness/5 until Stop.
func (f *Fanout) every(do func()) {
	tick := time.NewTicker(f.cfg.Liveness / 5)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		do()
	}
}

// rebalance reads which instances are live and starts or stops partitions so that this instance
// consumes exactly its share. Views of the live set may differ for a moment between instances;
// the pinned priority group keeps every partition on one instance regardless, and a partition
// wanted by two waits for the pin.
//
// A partition is handed over in one of two ways. Its previous owner, still live, drains it,
// ends its chain to every gateway it fed and unpins it (stopPartition): the next owner
// continues exactly after its last ack, and the gateways follow on without a resync. Or its
// previous owner is gone — dead, or this very instance before a restart — or nobody held it:
// the next owner resets the consumer to its ack floor, so that what the dead owner held comes
// again at once and first (reset), and unpins it itself rather than wait for the pin to lapse;
// the dead owner's chain never ended, so the gateways resync the sockets behind the switch, and
// the partition resyncs them on any gap (partition.inOrder).
// An owner only taken for gone (a stall longer than the liveness) may still deliver for a
// moment beside the next one: every switch between the two chains resyncs, so nothing is lost.
func (f *Fanout) rebalance(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Liveness+10*time.Second)
	defer cancel()
	// Liveness is judged on the watch's clock: another instance is gone when this one's own
	// refreshes came back through the watch for a whole liveness after that instance's last. A
	// watch or a bucket that stalls (a NATS node failing over, a busy machine) stalls this
	// instance's own refreshes too, and then nobody is declared gone: the assignment stays.
	ref := f.live.seenAt(f.cfg.InstanceID)
	if stale := time.Since(ref); stale > f.cfg.Liveness {
		if !f.stale {
			f.log.Warn("this instance's refreshes are not coming back through the fanouts bucket; keeping its partitions as they are", zap.Duration("since", stale))
		}
		f.stale = true
		return nil
	}
	f.stale = false
	live := f.live.liveAt(ref, f.cfg.Liveness)
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
		if slices.Contains(owned, p) {
			continue
		}
		changed = true
		prev := owner(f.cfg.Partitions, f.prevLive, p)
		gone := prev == f.cfg.InstanceID || !slices.Contains(live, prev)
		if gone {
			f.reset(ctx, p)
		}
		if err := f.startPartition(ctx, p); err != nil {
			return fmt.Errorf("take partition %d: %w", p, err)
		}
		if gone {
			f.unpin(ctx, p, prev)
		}
	}
	f.prevLive = live
	if changed {
		f.log.Info("fanout partitions", zap.Ints("mine", want), zap.Strings("live", live))
	}
	return nil
}

// refresh puts this instance's entry in the fanouts bucket.
func (f *Fanout) refresh(ctx context.Context) error {
	if _, err := f.instances.Put(ctx, f.cfg.InstanceID, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("refresh liveness: %w", err)
	}
	return nil
}

// awaitEcho waits until the watch has seen a put of this instance made after since.
func (f *Fanout) awaitEcho(ctx context.Context, since time.Time) error {
	for !f.live.seenAt(f.cfg.InstanceID).After(since) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("own entry not seen in the %s bucket: %w", streams.FanoutsBucket, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// reset sets partition p's consumer back to its ack floor before this instance takes it from an
// owner that is gone: what that owner was delivered and did not acknowledge comes again at once
// and first. Otherwise this instance's acks, each of which acknowledges every earlier event,
// would settle those events unrouted; if the reset fails, that is what happens, and the gap
// makes the partition resync its gateways (partition.inOrder), so devices still catch up.
func (f *Fanout) reset(ctx context.Context, p int) {
	name := streams.FanoutConsumerName(p, f.cfg.Partitions)
	if _, err := f.deps.JS.ResetConsumer(ctx, streams.ChatStream, name); err != nil {
		f.log.Warn("reset a gone owner's partition", zap.String("consumer", name), zap.Error(err))
	}
}

// unpin takes partition p's pin from prev, an owner that is gone (this instance's own previous
// run, another instance, or "" for nobody), so this instance's waiting pulls get the partition
// now rather than when the pin lapses.
func (f *Fanout) unpin(ctx context.Context, p int, prev string) {
	name := streams.FanoutConsumerName(p, f.cfg.Partitions)
	stream, err := f.deps.JS.Stream(ctx, streams.ChatStream)
	if err == nil {
		err = stream.UnpinConsumer(ctx, name, streams.FanoutGroup)
	}
	if err != nil { // not pinned at all, most likely: nothing to take over
		f.log.Debug("unpin a gone owner's partition", zap.String("consumer", name), zap.Error(err))
		return
	}
	f.log.Info("took over a partition whose owner is gone", zap.String("consumer", name), zap.String("owner", prev))
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

// owner is the instance that consumes partition p of n when live are the live instances, or ""
// when none is.
func owner(n int, live []string, p int) string {
	for _, id := range live {
		if slices.Contains(assign(n, live, id), p) {
			return id
		}
	}
	return ""
}

// liveSet follows the fanouts bucket: when this process saw each instance's last put. Deciding
// locally, from a watch, sees a dead instance go within one liveness, however the server times
// the bucket's TTL out.
type liveSet struct {
	w      jetstream.KeyWatcher
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	seen map[string]time.Time // instance -> when its last put was seen
}

// watchLive starts following kv. It returns once the entries that exist have been read, each
// dated by the server's time of its put.
func watchLive(ctx context.Context, kv jetstream.KeyValue) (*liveSet, error) {
	// The watch lives until stop, not as long as ctx; cancelling its context also ends the
	// library's own goroutine when the connection is already closed.
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", streams.FanoutsBucket, err)
	}
	l := &liveSet{w: w, cancel: cancel, done: make(chan struct{}), seen: map[string]time.Time{}}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			_ = w.Stop()
			cancel()
			return nil, fmt.Errorf("watch %s: %w", streams.FanoutsBucket, ctx.Err())
		}
		if e == nil { // the existing entries are all read
			break
		}
		at := e.Created()
		if now := time.Now(); at.After(now) {
			at = now
		}
		l.apply(e, at)
	}
	go func() {
		defer close(l.done)
		for e := range w.Updates() {
			if e != nil {
				l.apply(e, time.Now())
			}
		}
	}()
	return l, nil
}

func (l *liveSet) apply(e jetstream.KeyValueEntry, at time.Time) {
	if e.Operation() == jetstream.KeyValuePut {
		l.saw(e.Key(), at)
		return
	}
	l.mu.Lock()
	delete(l.seen, e.Key())
	l.mu.Unlock()
}

func (l *liveSet) saw(id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at.After(l.seen[id]) {
		l.seen[id] = at
	}
}

// liveAt is the instances whose last put was seen less than liveness before ref, sorted.
func (l *liveSet) liveAt(ref time.Time, liveness time.Duration) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id, at := range l.seen {
		if ref.Sub(at) < liveness {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// seenAt is when the last put of id was seen (zero if never).
func (l *liveSet) seenAt(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}

func (l *liveSet) stop() error {
	err := l.w.Stop()
	l.cancel()
	<-l.done
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, nats.ErrConnectionClosed) {
		err = nil // nothing left to stop
	}
	return err
}
