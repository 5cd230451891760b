package fanout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// arrivals records when each fake gateway got its event deliveries.
type arrivals struct {
	mu  sync.Mutex
	at  map[string][]time.Time // gateway -> arrival times of events
	seq map[string][]uint64
}

func (e *env) recordArrivals(t *testing.T, gws ...string) *arrivals {
	t.Helper()
	a := &arrivals{at: map[string][]time.Time{}, seq: map[string][]uint64{}}
	for _, gw := range gws {
		sub, err := e.nc.Subscribe(streams.DeliverSubject(gw), func(m *nats.Msg) {
			d, err := streams.DecodeDelivery(m.Data)
			if err != nil || d.Seq == 0 {
				return // resyncs and frames
			}
			a.mu.Lock()
			a.at[gw] = append(a.at[gw], time.Now())
			a.seq[gw] = append(a.seq[gw], d.Seq)
			a.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

// firstAbove is when the first event above seq arrived at gw, or the zero time.
func (a *arrivals) firstAbove(gw string, seq uint64) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, s := range a.seq[gw] {
		if s > seq {
			return a.at[gw][i]
		}
	}
	return time.Time{}
}

// startInstance runs a fanout instance on a connection of its own, so that closing the
// connection is what a crash looks like to the server.
func (e *env) startInstance(t *testing.T, id string, partitions int, liveness time.Duration) (*Fanout, *nats.Conn) {
	t.Helper()
	nc, err := natsx.Connect("", "fanout-"+id, e.srv, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Partitions, cfg.Liveness, cfg.InstanceID = partitions, liveness, id
	f, err := New(cfg, Deps{Log: zap.NewNop(), NC: nc, JS: js, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A crashed instance cannot drain: its Stop gives up when this runs out.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = f.Stop(ctx)
		nc.Close()
	})
	return f, nc
}

// deliveryPause publishes events on a group with a member behind gw, calls crash, keeps
// publishing one event every 20 ms and returns how long after the crash gw got the first event
// published after it.
func (e *env) deliveryPause(t *testing.T, gw string, a *arrivals, crash func()) time.Duration {
	t.Helper()
	var last uint64
	for range 10 { // in flight at the crash
		last, _ = e.msg(t, "g")
	}
	t0 := time.Now()
	crash()
	deadline := t0.Add(30 * time.Second)
	for a.firstAbove(gw, last).IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery to %s within 30 s of the crash", gw)
		}
		e.msg(t, "g")
		time.Sleep(20 * time.Millisecond)
	}
	return a.firstAbove(gw, last).Sub(t0)
}

// TestACrashedInstancesPartitionsMoveAtOnce: two instances with the default liveness share two
// partitions; the one delivering to a gateway crashes (its connection drops, as with kill -9).
// The survivor sees its entry go stale within the liveness and takes the partition over then,
// unpinning it rather than waiting for the dead one's pin to lapse: live delivery to that
// gateway pauses about the liveness (1 s), not the pinned TTL (8 s).
func TestACrashedInstancesPartitionsMoveAtOnce(t *testing.T) {
	opts := streams.DefaultOptions()
	opts.FanoutPartitions = 2
	e := newEnvWith(t, opts)
	gws := []string{"gw0", "gw1"}
	if streams.FanoutPartition(gws[0], 2) == streams.FanoutPartition(gws[1], 2) {
		t.Fatal("pick gateway ids in different partitions")
	}
	e.putConversation(t, "g", store.Group)
	for i, id := range gws {
		g := e.gateway(t, id)
		_ = g.sub.Unsubscribe()
		e.putMember(t, "g", fmt.Sprintf("u%d", i), 0, 0)
		e.route(t, g, fmt.Sprintf("u%d", i), "d")
	}
	arr := e.recordArrivals(t, gws...)
	a, aConn := e.startInstance(t, "a", 2, opts.FanoutLiveness)
	b, _ := e.startInstance(t, "b", 2, opts.FanoutLiveness)
	waitOwned(t, map[*Fanout]int{a: 1, b: 1})
	victim := gatewayOf(gws, a.owned()[0])

	pause := e.deliveryPause(t, victim, arr, aConn.Close)
	t.Logf("a crashed: live delivery to %s paused %s (liveness %s, pinned TTL %s)", victim, pause.Round(time.Millisecond), opts.FanoutLiveness, opts.FanoutPinnedTTL())
	// The figure is logged above (docs/architecture.md has the measured range); the test holds
	// the mechanism, with room for a loaded machine: waiting for the pin would take longer.
	if pause >= opts.FanoutPinnedTTL() {
		t.Fatalf("delivery paused %s after a crash: the survivor waited for the dead one's pin to lapse (%s)", pause, opts.FanoutPinnedTTL())
	}
	waitOwned(t, map[*Fanout]int{b: 2})
}

// TestARestartedInstanceTakesItsPartitionsBackAtOnce: the only instance crashes and comes back
// at once under the same id (natter run keeps it in its data dir). It must not wait for its old
// entry to lapse or its old pin to expire: the partitions were its own.
func TestARestartedInstanceTakesItsPartitionsBackAtOnce(t *testing.T) {
	opts := streams.DefaultOptions()
	opts.FanoutLiveness = 15 * time.Second // its old entry outlives the restart by far
	e := newEnvWith(t, opts)
	e.putConversation(t, "g", store.Group)
	g := e.gateway(t, "gw")
	_ = g.sub.Unsubscribe()
	e.putMember(t, "g", "u", 0, 0)
	e.route(t, g, "u", "d")
	arr := e.recordArrivals(t, "gw")
	_, conn := e.startInstance(t, "a", 1, opts.FanoutLiveness)

	pause := e.deliveryPause(t, "gw", arr, func() {
		conn.Close()
		e.startInstance(t, "a", 1, opts.FanoutLiveness)
	})
	t.Logf("restarted under the same id: live delivery paused %s (pinned TTL %s)", pause.Round(time.Millisecond), opts.FanoutPinnedTTL())
	if pause > opts.FanoutPinnedTTL()/2 {
		t.Fatalf("delivery paused %s after a restart under the same id; the pin was its own and must be taken back at once", pause)
	}
}

func TestInstanceIDIsKeptAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "fanout.id")
	first, err := LoadOrCreateInstanceID(path)
	if err != nil || !streams.ValidToken(first) {
		t.Fatalf("first id %q, %v", first, err)
	}
	again, err := LoadOrCreateInstanceID(path)
	if err != nil || again != first {
		t.Fatalf("second read %q, %v; want %q", again, err, first)
	}
	if err := os.WriteFile(path, []byte("not a token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateInstanceID(path); err == nil {
		t.Fatal("a malformed id was accepted")
	}
}

// waitOwned waits until each instance owns as many partitions as given.
func waitOwned(t *testing.T, want map[*Fanout]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for f, n := range want {
			ok = ok && len(f.owned()) == n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for f := range want {
				t.Logf("%s owns %v", f.cfg.InstanceID, f.owned())
			}
			t.Fatal("partitions not shared out as expected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatewayOf is the gateway of gws that partition p (of len(gws)) delivers to.
func gatewayOf(gws []string, p int) string {
	for _, gw := range gws {
		if streams.FanoutPartition(gw, len(gws)) == p {
			return gw
		}
	}
	return ""
}

// TestAReconnectProbesTheGatewaysChains: deliveries are core NATS, so those in flight when an
// instance's connection to NATS drops may be lost. After it reconnects, the instance sends each
// gateway it fed the next link of its chain, empty, so that a gateway with a hole sees it now,
// not at its next delivery.
func TestAReconnectProbesTheGatewaysChains(t *testing.T) {
	e := newEnvWith(t, streams.DefaultOptions())
	e.putConversation(t, "g", store.Group)
	g := e.gateway(t, "gw")
	e.putMember(t, "g", "u", 0, 0)
	e.route(t, g, "u", "d")
	_, conn := e.startInstance(t, "a", 1, streams.DefaultOptions().FanoutLiveness)
	seq, ev := e.msg(t, "g")
	g.expect(t, eventDelivery(seq, []string{"u"}, ev))
	g.quiet(t, 300*time.Millisecond) // nothing but deliveries while the connection holds

	if err := conn.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	m, err := g.sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no probe after the reconnect: %v", err)
	}
	probe, err := streams.DecodeDelivery(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if probe.Chain == 0 || probe.N != g.n[probe.Chain]+1 || probe.Seq != 0 || len(probe.Frame) != 0 || probe.End || probe.Resync {
		t.Fatalf("after a reconnect the gateway got %s; want the next link of chain %v, empty", m.Data, g.n)
	}
}

// TestATakeOverRoutesWhatTheGoneOwnerHeldFirst: an owner pulled ten events and died without
// acknowledging them (a raw pull through the priority group stands in for it: it takes the pin,
// then its connection drops). The next owner resets the partition to its ack floor before it
// pulls, so the gateway gets those ten first, then the five published after the crash: every
// event once, in order, and no resync. Without the reset the ten would come back only after the
// ack wait, behind the five, and the new owner's ack of the five would settle them unrouted.
func TestATakeOverRoutesWhatTheGoneOwnerHeldFirst(t *testing.T) {
	opts := streams.DefaultOptions()
	e := newEnvWith(t, opts)
	e.putConversation(t, "g", store.Group)
	g := e.gateway(t, "gw")
	e.putMember(t, "g", "u", 0, 0)
	e.route(t, g, "u", "d")
	var want []uint64
	for range 10 {
		seq, _ := e.msg(t, "g")
		want = append(want, seq)
	}

	natsxtest.PullAndDie(t, e.srv, streams.ChatStream, streams.FanoutConsumerName(0, 1), len(want), jetstream.FetchPriorityGroup(streams.FanoutGroup))
	for range 5 {
		seq, _ := e.msg(t, "g")
		want = append(want, seq)
	}

	e.startInstance(t, "a", 1, opts.FanoutLiveness)
	var got []uint64
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(want) {
		m, err := g.sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("got %v, want %v: %v", got, want, err)
		}
		d, err := streams.DecodeDelivery(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if d.Resync {
			t.Fatalf("a resync after %v: the held events were skipped", got)
		}
		if d.Seq != 0 {
			got = append(got, d.Seq)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the gateway got %v, want %v", got, want)
	}
}
