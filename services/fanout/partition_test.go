package fanout

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

func TestAssignSharesPartitionsEvenly(t *testing.T) {
	live := []string{"c", "a", "b"}
	var all []int
	for _, id := range live {
		mine := assign(8, live, id)
		if len(mine) < 2 || len(mine) > 3 {
			t.Errorf("%s gets %v of 8 partitions among 3", id, mine)
		}
		all = append(all, mine...)
	}
	slices.Sort(all)
	if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("partitions handed out %v, want each once", all)
	}
	if got := assign(4, nil, "a"); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("alone: %v", got)
	}
	if got := assign(2, []string{"a", "b", "c"}, "c"); len(got) != 0 {
		t.Errorf("more instances than partitions: c gets %v", got)
	}
}

// device models one connected device behind a fake gateway, as the real gateway and client
// behave: an event above its cursor is taken and moves the cursor; anything else is dropped as a
// repeat (a gateway drops what is not above what it sent); a resync makes it catch up from its
// cursor to the head, as a reconnect does.
type device struct {
	mu       sync.Mutex
	arrivals []uint64 // event deliveries, in arrival order
	cursor   uint64
	has      map[uint64]bool
	resyncs  int
}

func (d *device) event(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.arrivals = append(d.arrivals, seq)
	if seq > d.cursor {
		d.has[seq], d.cursor = true, seq
	}
}

// resync catches up on head: every published seq above the cursor.
func (d *device) resync(head []uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resyncs++
	for _, seq := range head {
		if seq > d.cursor {
			d.has[seq] = true
		}
	}
	if n := len(head); n > 0 {
		d.cursor = max(d.cursor, head[n-1])
	}
}

func (d *device) got() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.arrivals)
}

// missing lists the published seqs the device does not have.
func (d *device) missing(published []uint64) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	for _, seq := range published {
		if !d.has[seq] {
			out = append(out, seq)
		}
	}
	return out
}

// TestPartitionsShareTheWorkAndKeepEveryGatewaysOrder runs fanout instances on four partitions
// while events flow. A second instance joins: partitions are handed over and every gateway gets
// every event exactly once, in order. Then the first crashes mid-stream, holding events it never
// acknowledged, and a third starts at once (it wants one of the dead one's partitions while the
// dead one is still listed, and gives it up again). Every device must end up with every event:
// no event may reach a gateway after a newer one unless the gateway was told to resync first.
func TestPartitionsShareTheWorkAndKeepEveryGatewaysOrder(t *testing.T) {
	opts := streams.DefaultOptions()
	// The ack wait outlasts the liveness, as by default (5 s > 1 s), so a dead instance's events
	// are still held when the survivors take its partitions over.
	opts.FanoutPartitions, opts.FanoutAckWait, opts.FanoutLiveness = 4, 3*time.Second, 1500*time.Millisecond
	e := newEnvWith(t, opts)

	var pubMu sync.Mutex
	var published []uint64
	publishedNow := func() []uint64 {
		pubMu.Lock()
		defer pubMu.Unlock()
		return slices.Clone(published)
	}

	const gateways = 8
	devs := make([]*device, gateways)
	e.putConversation(t, "g", store.Group)
	for i := range gateways {
		id, user := fmt.Sprintf("gw%d", i), fmt.Sprintf("u%d", i)
		e.putMember(t, "g", user, 0, 0)
		g := e.gateway(t, id)
		e.route(t, g, user, "d1")
		devs[i] = &device{has: map[uint64]bool{}}
		_ = g.sub.Unsubscribe()
		// The numbering, as the gateway follows it: one server loses nothing, so no number is
		// skipped; a new chain before the last one ended is a resync.
		last, ended := map[uint64]uint64{}, map[uint64]bool{}
		var current uint64
		sub, err := e.nc.Subscribe(streams.DeliverSubject(id), func(m *nats.Msg) {
			d, err := streams.DecodeDelivery(m.Data)
			if err != nil {
				t.Errorf("%s: bad delivery %s (%v)", id, m.Data, err)
				return
			}
			if d.Chain == 0 || d.N != last[d.Chain]+1 {
				t.Errorf("%s: delivery numbered %d in chain %d after %d", id, d.N, d.Chain, last[d.Chain])
			}
			last[d.Chain] = d.N
			if d.End {
				ended[d.Chain] = true
				return
			}
			if current != 0 && d.Chain != current && !ended[current] {
				devs[i].resync(publishedNow())
			}
			current = d.Chain
			switch {
			case d.Resync:
				devs[i].resync(publishedNow())
			case d.Seq == 0 || !slices.Equal(d.Users, []string{user}):
				t.Errorf("%s: bad delivery %s", id, m.Data)
			default:
				devs[i].event(d.Seq)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	partitions := map[int]bool{}
	for i := range gateways {
		partitions[streams.FanoutPartition(fmt.Sprintf("gw%d", i), 4)] = true
	}
	if len(partitions) < 3 {
		t.Fatalf("the gateways fall in only %d of 4 partitions; pick other ids", len(partitions))
	}

	start := func(id string) (*Fanout, *nats.Conn) {
		nc, err := natsx.Connect("", "fanout-"+id, e.srv, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Partitions, cfg.Liveness, cfg.InstanceID = 4, opts.FanoutLiveness, id
		f, err := New(cfg, Deps{Log: zap.NewNop(), NC: nc, JS: js, Store: e.store})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		return f, nc
	}
	stopOf := func(f *Fanout) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.Stop(ctx)
	}
	publish := func(n int) {
		for range n {
			seq, _ := e.msg(t, "g")
			pubMu.Lock()
			published = append(published, seq)
			pubMu.Unlock()
		}
	}

	a, aConn := start("a")
	if got := a.owned(); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("alone, a consumes %v", got)
	}
	publish(50)
	b, bConn := start("b")
	defer bConn.Close()
	defer stopOf(b)
	// Events keep flowing while b takes its share over.
	deadline := time.Now().Add(10 * time.Second)
	for len(a.owned()) != 2 || len(b.owned()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no even split: a %v, b %v", a.owned(), b.owned())
		}
		publish(20)
		time.Sleep(5 * time.Millisecond)
	}
	publish(50)
	waitAll(t, devs, publishedNow(), 10*time.Second)
	for i, d := range devs {
		if got, want := d.got(), publishedNow(); !slices.Equal(got, want) || d.resyncs != 0 {
			t.Fatalf("gw%d across the handover: %d deliveries and %d resyncs (or chains taking over before the last ended), want each of %d once in order and no resync:\n got %v\nwant %v",
				i, len(got), d.resyncs, len(want), got, want)
		}
	}

	// a crashes mid-stream, holding unacknowledged events; c starts at once.
	publish(30)
	aConn.Close()
	c, cConn := start("c")
	defer cConn.Close()
	defer stopOf(c)
	deadline = time.Now().Add(30 * time.Second)
	var spread time.Time
	for spread.IsZero() || time.Since(spread) < opts.FanoutPinnedTTL()+time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("after a crashed: b %v, c %v", b.owned(), c.owned())
		}
		if mine := append(b.owned(), c.owned()...); len(mine) == 4 && spread.IsZero() {
			spread = time.Now()
		}
		publish(5)
		time.Sleep(5 * time.Millisecond)
	}
	want := publishedNow()
	waitAll(t, devs, want, 20*time.Second)
	resyncs := 0
	for i, d := range devs {
		if miss := d.missing(want); len(miss) > 0 {
			t.Fatalf("gw%d lost %v across the crash (%d resyncs); arrivals %v", i, miss, d.resyncs, d.got())
		}
		resyncs += d.resyncs
	}
	t.Logf("%d events; across the crash the gateways were told to resync %d times", len(want), resyncs)
	stopOf(a)
}

// waitAll waits until every device has the last published seq.
func waitAll(t *testing.T, recs []*device, published []uint64, wait time.Duration) {
	t.Helper()
	last := published[len(published)-1]
	deadline := time.Now().Add(wait)
	for i, r := range recs {
		for !slices.Contains(r.got(), last) {
			if time.Now().After(deadline) {
				t.Fatalf("gw%d never received seq %d; has %d deliveries", i, last, len(r.got()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
