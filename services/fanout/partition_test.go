package fanout

import (
	"context"
	"encoding/json"
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

// recorder collects the event deliveries of one fake gateway.
type recorder struct {
	mu   sync.Mutex
	seqs []uint64
}

func (r *recorder) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// TestPartitionsShareTheWorkAndKeepEveryGatewaysOrder runs two fanout instances on four
// partitions while events flow: the second joins (partitions are handed over), then the first
// crashes (its partitions fail over once its pins lapse). Every gateway must receive every event
// of its user in one increasing order: exactly once across the handover, and across the crash
// at least once with repeats only of what it already had (the gateway drops those).
func TestPartitionsShareTheWorkAndKeepEveryGatewaysOrder(t *testing.T) {
	opts := streams.DefaultOptions()
	opts.FanoutPartitions, opts.GatewayTTL, opts.FanoutAckWait = 4, 1500*time.Millisecond, time.Second
	e := newEnvWith(t, opts)

	const gateways = 8
	recs := make([]*recorder, gateways)
	var users []string
	e.putConversation(t, "g", store.Group)
	for i := range gateways {
		id, user := fmt.Sprintf("gw%d", i), fmt.Sprintf("u%d", i)
		users = append(users, user)
		e.putMember(t, "g", user, 0, 0)
		g := e.gateway(t, id)
		e.route(t, g, user, "d1")
		recs[i] = &recorder{}
		_ = g.sub.Unsubscribe()
		sub, err := e.nc.Subscribe(streams.DeliverSubject(id), func(m *nats.Msg) {
			var d streams.Delivery
			if err := json.Unmarshal(m.Data, &d); err != nil || d.Seq == 0 || !slices.Equal(d.Users, []string{user}) {
				t.Errorf("%s: bad delivery %s (%v)", id, m.Data, err)
				return
			}
			recs[i].mu.Lock()
			recs[i].seqs = append(recs[i].seqs, d.Seq)
			recs[i].mu.Unlock()
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
		cfg.Partitions, cfg.Liveness, cfg.InstanceID = 4, opts.GatewayTTL, id
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

	var published []uint64
	publish := func(n int) {
		for range n {
			seq, _ := e.msg(t, "g")
			published = append(published, seq)
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
	waitAll(t, recs, published, 10*time.Second)
	for i, r := range recs {
		if got := r.got(); !slices.Equal(got, published) {
			t.Fatalf("gw%d across the handover: got %d deliveries, want each of %d once in order:\n got %v\nwant %v", i, len(got), len(published), got, published)
		}
	}

	// a crashes: its connection goes without a word; its pins lapse and b takes everything.
	aConn.Close()
	publish(100)
	waitAll(t, recs, published, 20*time.Second)
	for i, r := range recs {
		got := r.got()
		var first []uint64
		for _, seq := range got {
			if len(first) > 0 && seq <= first[len(first)-1] {
				if !slices.Contains(first, seq) {
					t.Fatalf("gw%d: seq %d arrived after %d and was never seen before: out of order", i, seq, first[len(first)-1])
				}
				continue // a redelivery of what it had; the gateway drops it
			}
			first = append(first, seq)
		}
		if !slices.Equal(first, published) {
			t.Fatalf("gw%d across the crash: first deliveries\n got %v\nwant %v", i, first, published)
		}
	}
	if got := b.owned(); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("after a crashed, b consumes %v", got)
	}
	stopOf(a)
}

// waitAll waits until every recorder has seen the last published seq.
func waitAll(t *testing.T, recs []*recorder, published []uint64, wait time.Duration) {
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
