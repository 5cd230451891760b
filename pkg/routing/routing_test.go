package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

type env struct {
	ctx context.Context
	js  jetstream.JetStream
	kv  jetstream.KeyValue
}

func newEnv(t testing.TB, opts streams.Options) *env {
	t.Helper()
	te := natsxtest.StartWith(t, opts)
	return &env{ctx: te.Ctx, js: te.JS, kv: te.KeyValue(t, streams.RoutesBucket)}
}

func (e *env) watch(t testing.TB) *Table {
	t.Helper()
	tab, err := Watch(e.ctx, e.js, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tab.Stop)
	return tab
}

func (e *env) route(t *testing.T, user, device string) (streams.Route, uint64) {
	t.Helper()
	entry, err := e.kv.Get(e.ctx, streams.RouteKey(user, device))
	if err != nil {
		t.Fatalf("get route %s.%s: %v", user, device, err)
	}
	var r streams.Route
	if err := json.Unmarshal(entry.Value(), &r); err != nil {
		t.Fatal(err)
	}
	return r, entry.Revision()
}

func gateways(tab *Table, user string) []string {
	var out []string
	tab.EachGateway([]string{user}, func(_ int, gw string) { out = append(out, gw) })
	sort.Strings(out)
	return out
}

// devices lists "device@gateway/conn", sorted.
func devices(tab *Table, user string) []string {
	var out []string
	for _, d := range tab.Devices(user) {
		out = append(out, d.DeviceID+"@"+d.Route.Gateway+"/"+d.Route.Conn)
	}
	sort.Strings(out)
	return out
}

func TestRegistrarPut(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	reg := NewRegistrar(e.kv, "gwA")
	before := time.Now().UnixMilli()
	rev, err := reg.Put(e.ctx, "alice", "phone", "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()
	r, gotRev := e.route(t, "alice", "phone")
	if gotRev != rev || rev == 0 {
		t.Fatalf("revision %d, Put returned %d", gotRev, rev)
	}
	if r.Gateway != "gwA" || r.Conn != "conn-1" || r.Since < before || r.Since > after {
		t.Fatalf("route %+v, want gwA/conn-1 since in [%d, %d]", r, before, after)
	}
	// Putting again is the refresh: a new revision, same route.
	rev2, err := reg.Put(e.ctx, "alice", "phone", "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if rev2 <= rev {
		t.Fatalf("refresh revision %d not after %d", rev2, rev)
	}
}

func TestRegistrarDelete(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	gwA, gwB := NewRegistrar(e.kv, "gwA"), NewRegistrar(e.kv, "gwB")

	rev, err := gwA.Put(e.ctx, "alice", "phone", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := gwA.Delete(e.ctx, "alice", "phone", rev); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kv.Get(e.ctx, streams.RouteKey("alice", "phone")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("after delete: %v, want ErrKeyNotFound", err)
	}
	// Deleting again with the same (now stale) revision is a no-op, not an error.
	if err := gwA.Delete(e.ctx, "alice", "phone", rev); err != nil {
		t.Fatalf("second delete: %v", err)
	}

	// The device reconnects to gwB; the old socket on gwA closes late and must not remove it.
	oldRev, err := gwA.Put(e.ctx, "bob", "laptop", "a-1")
	if err != nil {
		t.Fatal(err)
	}
	newRev, err := gwB.Put(e.ctx, "bob", "laptop", "b-7")
	if err != nil {
		t.Fatal(err)
	}
	if err := gwA.Delete(e.ctx, "bob", "laptop", oldRev); err != nil {
		t.Fatalf("stale delete: %v", err)
	}
	r, rev2 := e.route(t, "bob", "laptop")
	if rev2 != newRev || r.Gateway != "gwB" || r.Conn != "b-7" {
		t.Fatalf("after stale delete: %+v at %d, want gwB/b-7 at %d", r, rev2, newRev)
	}
	// A key that never existed: nothing to delete, no error.
	if err := gwA.Delete(e.ctx, "nobody", "nothing", 1); err != nil {
		t.Fatalf("delete of a missing route: %v", err)
	}
}

func TestTableLoadsAndFollows(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	gwA, gwB := NewRegistrar(e.kv, "gwA"), NewRegistrar(e.kv, "gwB")
	mustPut := func(reg *Registrar, u, d, c string) uint64 {
		t.Helper()
		rev, err := reg.Put(e.ctx, u, d, c)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	mustPut(gwA, "alice", "phone", "a1")
	mustPut(gwB, "alice", "laptop", "b1")
	bobRev := mustPut(gwA, "bob", "phone", "a2")
	// A key that is not <user>.<device> is ignored, not applied as a route.
	if _, err := e.kv.Put(e.ctx, "garbage", []byte(`{"gateway":"gwX"}`)); err != nil {
		t.Fatal(err)
	}
	// Neither is a value that is not a route.
	if _, err := e.kv.Put(e.ctx, "carol.phone", []byte(`not json`)); err != nil {
		t.Fatal(err)
	}

	tab := e.watch(t)
	if got := devices(tab, "alice"); !slices.Equal(got, []string{"laptop@gwB/b1", "phone@gwA/a1"}) {
		t.Fatalf("alice at load: %v", got)
	}
	if got := gateways(tab, "bob"); !slices.Equal(got, []string{"gwA"}) {
		t.Fatalf("bob at load: %v", got)
	}
	if got := gateways(tab, "carol"); len(got) != 0 {
		t.Fatalf("carol (bad entry) routed to %v", got)
	}
	if got := gateways(tab, "garbage"); len(got) != 0 {
		t.Fatalf("garbage key routed to %v", got)
	}

	// Follows puts, moves and deletes.
	mustPut(gwB, "bob", "tablet", "b2")
	mustPut(gwB, "alice", "phone", "b3") // moved from gwA
	if err := gwA.Delete(e.ctx, "bob", "phone", bobRev); err != nil {
		t.Fatal(err)
	}
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := devices(tab, "alice"); !slices.Equal(got, []string{"laptop@gwB/b1", "phone@gwB/b3"}) {
		t.Fatalf("alice after move: %v", got)
	}
	if got := gateways(tab, "alice"); !slices.Equal(got, []string{"gwB"}) {
		t.Fatalf("alice gateways after move: %v", got)
	}
	if got := devices(tab, "bob"); !slices.Equal(got, []string{"tablet@gwB/b2"}) {
		t.Fatalf("bob after delete: %v", got)
	}
	// Purge removes too.
	if err := e.kv.Purge(e.ctx, streams.RouteKey("bob", "tablet")); err != nil {
		t.Fatal(err)
	}
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := devices(tab, "bob"); len(got) != 0 {
		t.Fatalf("bob after purge: %v", got)
	}
	if got := gateways(tab, "bob"); len(got) != 0 {
		t.Fatalf("bob gateways after purge: %v", got)
	}
}

func TestGatewaysDedupesPerUser(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	// alice: three devices on gwA, one on gwB.
	for i, gw := range []string{"gwA", "gwA", "gwB", "gwA"} {
		if _, err := NewRegistrar(e.kv, gw).Put(e.ctx, "alice", fmt.Sprintf("d%d", i), "c"); err != nil {
			t.Fatal(err)
		}
	}
	tab := e.watch(t)
	if got := gateways(tab, "alice"); !slices.Equal(got, []string{"gwA", "gwB"}) {
		t.Fatalf("alice's gateways %v, want [gwA gwB] once each", got)
	}
	if got := gateways(tab, "nobody"); len(got) != 0 {
		t.Fatalf("unrouted user has gateways %v", got)
	}
	if got := tab.Devices("nobody"); len(got) != 0 {
		t.Fatalf("unrouted user has devices %v", got)
	}
}

// EachGateway promises each gateway once, however many gateways a user's devices are spread over.
func TestGatewaysDedupesBeyondFourGateways(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	var want []string
	for g := 0; g < 6; g++ {
		gw := fmt.Sprintf("gw%d", g)
		want = append(want, gw)
		for d := 0; d < 2; d++ {
			if _, err := NewRegistrar(e.kv, gw).Put(e.ctx, "alice", fmt.Sprintf("%s-d%d", gw, d), "c"); err != nil {
				t.Fatal(err)
			}
		}
	}
	tab := e.watch(t)
	if got := gateways(tab, "alice"); !slices.Equal(got, want) {
		t.Fatalf("alice (12 devices on 6 gateways): EachGateway called for %v, want each of %v once", got, want)
	}
}

// EachGateway answers for many users at once: each user's gateways once, users in the order
// given.
func TestEachGatewayAnswersForEveryUser(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	routes := map[string][]string{"alice": {"gwA", "gwA", "gwB"}, "bob": {"gwB"}, "carol": {"gwC", "gwA"}}
	for user, gws := range routes {
		for i, gw := range gws {
			if _, err := NewRegistrar(e.kv, gw).Put(e.ctx, user, fmt.Sprintf("d%d", i), "c"); err != nil {
				t.Fatal(err)
			}
		}
	}
	tab := e.watch(t)
	var got []string
	users := []string{"carol", "nobody", "alice", "bob"}
	tab.EachGateway(users, func(i int, gw string) { got = append(got, users[i]+"@"+gw) })
	want := []string{"carol@gwA", "carol@gwC", "alice@gwA", "alice@gwB", "bob@gwB"}
	if len(got) == len(want) {
		slices.Sort(got[:2]) // one user's gateways come in no particular order
		slices.Sort(got[2:4])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("EachGateway %v, want %v", got, want)
	}
}

func TestSyncMakesEarlierPutsVisible(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	tab := e.watch(t)
	regs := []*Registrar{NewRegistrar(e.kv, "gwA"), NewRegistrar(e.kv, "gwB")}
	revs := map[string]uint64{}
	for i := 0; i < 200; i++ {
		user := fmt.Sprintf("u%03d", i)
		gw := fmt.Sprintf("gw%c", 'A'+i%2)
		rev, err := regs[i%2].Put(e.ctx, user, "d", "c")
		if err != nil {
			t.Fatal(err)
		}
		revs[user] = rev
		if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := gateways(tab, user); !slices.Equal(got, []string{gw}) {
			t.Fatalf("iteration %d: %s routed to %v right after Sync, want [%s]", i, user, got, gw)
		}
	}
	for i := 0; i < 200; i += 3 {
		user := fmt.Sprintf("u%03d", i)
		if err := regs[i%2].Delete(e.ctx, user, "d", revs[user]); err != nil {
			t.Fatal(err)
		}
		if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := gateways(tab, user); len(got) != 0 {
			t.Fatalf("%s still routed to %v right after delete and Sync", user, got)
		}
	}
}

// expiredEnv returns a routes bucket whose entries all expired (their gateway stopped refreshing
// them) before a table started watching it.
func expiredEnv(t *testing.T) (*env, *Table) {
	t.Helper()
	opts := streams.DefaultOptions()
	opts.RouteTTL = 500 * time.Millisecond
	e := newEnv(t, opts)
	reg := NewRegistrar(e.kv, "gwA")
	for _, u := range []string{"alice", "bob"} {
		if _, err := reg.Put(e.ctx, u, "phone", "c1"); err != nil {
			t.Fatal(err)
		}
	}
	waitExpired(t, e)
	return e, e.watch(t)
}

// waitExpired waits until the routes bucket's stream holds no message at all (entries, and any
// expiry markers, gone).
func waitExpired(t *testing.T, e *env) {
	t.Helper()
	st, err := e.js.Stream(e.ctx, "KV_"+streams.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := st.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 && info.State.LastSeq > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes never expired: %+v", info.State)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Nothing can arrive for a bucket whose every entry expired: the barrier does not wait.
func TestSyncWhenEveryRouteExpired(t *testing.T) {
	t.Parallel()
	e, tab := expiredEnv(t)
	began := time.Now()
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if d := time.Since(began); d > 4*time.Second { // it waited for the barrier's 5 s, or nearly
		t.Fatalf("sync on an empty bucket took %s", d)
	}
	if got := gateways(tab, "alice"); len(got) != 0 {
		t.Fatalf("expired alice loaded at watch: %v", got)
	}
	if _, err := NewRegistrar(e.kv, "gwB").Put(e.ctx, "carol", "phone", "c3"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := gateways(tab, "carol"); !slices.Equal(got, []string{"gwB"}) {
		t.Fatalf("carol %v", got)
	}
}

// laggingTable returns a table whose mirror cannot reach the bucket's last revision: that entry
// left the stream (purged underneath the bucket) before the table watched, while another remains,
// which is what a watcher that has fallen behind looks like to the barrier. Only the stream info
// still names the purged revision, so the table reads its target that way.
func laggingTable(t *testing.T, e *env) *Table {
	t.Helper()
	if _, err := NewRegistrar(e.kv, "gwA").Put(e.ctx, "alice", "phone", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRegistrar(e.kv, "gwA").Put(e.ctx, "bob", "phone", "c2"); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(e.ctx, "KV_"+streams.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(e.ctx, jetstream.WithPurgeSubject("$KV."+streams.RoutesBucket+"."+streams.RouteKey("bob", "phone"))); err != nil {
		t.Fatal(err)
	}
	tab := e.watch(t)
	tab.directGet = ""
	if got := gateways(tab, "alice"); !slices.Equal(got, []string{"gwA"}) {
		t.Fatalf("alice %v", got)
	}
	return tab
}

// The barrier's cheap target (a direct get of the last message) is the stream's last sequence
// after every kind of write the bucket sees: puts that replace, deletes, purges, and TTL expiry.
func TestDirectTargetIsTheStreamsLastSequence(t *testing.T) {
	opts := streams.DefaultOptions()
	opts.RouteTTL = 300 * time.Millisecond
	e := newEnv(t, opts)
	tab := e.watch(t)
	if tab.directGet == "" {
		t.Fatal("a one-replica bucket should take the direct-get barrier")
	}
	st, err := e.js.Stream(e.ctx, "KV_"+streams.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	agree := func(step string) {
		t.Helper()
		info, err := st.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := info.State.LastSeq
		if info.State.Msgs == 0 {
			want = 0
		}
		got, err := tab.lastRevision(e.ctx)
		if err != nil || got != want {
			t.Fatalf("%s: direct target %d (%v), stream's last %d (%d messages)", step, got, err, want, info.State.Msgs)
		}
	}
	agree("empty")
	regs := []*Registrar{NewRegistrar(e.kv, "gwA"), NewRegistrar(e.kv, "gwB")}
	revs := map[string]uint64{}
	for i := range 300 {
		user := fmt.Sprintf("u%d", i%17)
		switch i % 5 {
		case 3:
			if rev := revs[user]; rev != 0 {
				if err := regs[i%2].Delete(e.ctx, user, "d", rev); err != nil {
					t.Fatal(err)
				}
				delete(revs, user)
			}
		case 4:
			if err := e.kv.Purge(e.ctx, streams.RouteKey(user, "d")); err != nil {
				t.Fatal(err)
			}
			delete(revs, user)
		default:
			rev, err := regs[i%2].Put(e.ctx, user, "d", fmt.Sprintf("c%d", i))
			if err != nil {
				t.Fatal(err)
			}
			revs[user] = rev
		}
		agree(fmt.Sprintf("write %d", i))
	}
	time.Sleep(opts.RouteTTL + 500*time.Millisecond) // everything expires
	agree("expired")
}

// On a replicated bucket the barrier asks the leader (a follower may answer a direct get from
// behind), and routes written before Sync are in the mirror after it, as on one node.
func TestSyncOnAReplicatedBucket(t *testing.T) {
	c := natsxtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := streams.DefaultOptions()
	opts.Replicas = 3
	js := c.Define(opts)
	kv, err := js.KeyValue(ctx, streams.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Watch(ctx, js, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Stop()
	if tab.directGet != "" {
		t.Fatal("a replicated bucket must not take the direct-get barrier")
	}
	reg := NewRegistrar(kv, "gwA")
	for i := range 50 {
		user := fmt.Sprintf("u%d", i)
		if _, err := reg.Put(ctx, user, "d", "c"); err != nil {
			t.Fatal(err)
		}
		if err := tab.Sync(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := gateways(tab, user); !slices.Equal(got, []string{"gwA"}) {
			t.Fatalf("%s routed to %v right after Sync", user, got)
		}
	}
}

func TestSyncHonoursMaxWait(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	tab := laggingTable(t, e)
	began := time.Now()
	err := tab.Sync(e.ctx, 150*time.Millisecond)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("sync on a mirror that cannot catch up: %v, want the barrier's own error", err)
	}
	if d := time.Since(began); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("sync returned after %s, want about 150ms", d)
	}
	// The next write reaches the mirror: the barrier holds again.
	if _, err := NewRegistrar(e.kv, "gwB").Put(e.ctx, "carol", "phone", "c3"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := gateways(tab, "carol"); !slices.Equal(got, []string{"gwB"}) {
		t.Fatalf("carol %v", got)
	}
}

func TestSyncHonoursContext(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	tab := laggingTable(t, e)
	ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := tab.Sync(ctx, 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sync: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("sync returned after %s, want about 100ms", d)
	}
	cancelled, cancel2 := context.WithCancel(e.ctx)
	cancel2()
	if err := tab.Sync(cancelled, 10*time.Second); err == nil {
		t.Fatal("sync with a cancelled context succeeded")
	}
}

func TestSyncAfterStop(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	tab, err := Watch(e.ctx, e.js, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tab.Stop()
	if _, err := NewRegistrar(e.kv, "gwA").Put(e.ctx, "alice", "phone", "c1"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := tab.Sync(e.ctx, 10*time.Second); err == nil {
		t.Fatal("sync on a stopped table succeeded")
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("sync on a stopped table took %s", d)
	}
}

func TestWatchHonoursContext(t *testing.T) {
	e := newEnv(t, streams.DefaultOptions())
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if tab, err := Watch(ctx, e.js, zap.NewNop()); err == nil {
		tab.Stop()
		t.Fatal("watch with a cancelled context succeeded")
	}
}

// A dead gateway's users go offline when its TTLs lapse (docs/architecture.md, Presence). A
// route that expires (its gateway stopped refreshing it) must leave the mirror as it leaves the
// bucket.
func TestTableForgetsExpiredRoutes(t *testing.T) {
	t.Parallel()
	opts := streams.DefaultOptions()
	opts.RouteTTL = 500 * time.Millisecond
	e := newEnv(t, opts)
	tab := e.watch(t)
	if _, err := NewRegistrar(e.kv, "gwA").Put(e.ctx, "alice", "phone", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := gateways(tab, "alice"); !slices.Equal(got, []string{"gwA"}) {
		t.Fatalf("alice %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.kv.Get(e.ctx, streams.RouteKey("alice", "phone"))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route never expired from the bucket: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	deadline = time.Now().Add(time.Second)
	for len(gateways(tab, "alice")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("route expired from the bucket but the table still routes alice to %v (devices %v)",
				gateways(tab, "alice"), devices(tab, "alice"))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// BenchmarkEachGateway is fanout's routing of one event to a group of 100 members, each with
// one connected device on one gateway: the table's share of the group's per-delivery cost.
func BenchmarkEachGateway(b *testing.B) {
	e := newEnv(b, streams.DefaultOptions())
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
		if _, err := NewRegistrar(e.kv, "gwA").Put(e.ctx, users[i], "d0", "c"); err != nil {
			b.Fatal(err)
		}
	}
	tab := e.watch(b)
	if err := tab.Sync(e.ctx, 5*time.Second); err != nil {
		b.Fatal(err)
	}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		tab.EachGateway(users, func(int, string) { n++ })
	}
	if n != 100*b.N {
		b.Fatalf("routed %d, want %d", n, 100*b.N)
	}
}
