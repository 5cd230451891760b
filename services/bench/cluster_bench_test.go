package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

// BenchmarkCluster measures what docs/scaling.md is sized from: JetStream's cost per CHAT event
// with one replica and with three, with and without an fsync per write, on loopback — beside a
// raw core NATS pub→sub baseline measured in the same run. Every node and every client lives in
// this one process on this one machine, so the CPU figures (cpu-µs/msg: process CPU over the
// measured window, divided by the messages) are the cost of the whole system — client, stream
// leader and, for R3, both followers — per message.
//
//	go test -run '^$' -bench Cluster -benchtime 2s ./services/bench/
//
// Topologies (one at a time; each is started by its sub-benchmark and stopped after it):
//
//	R1      one node, file storage, sync_interval default (2 min): acknowledged = in the page cache
//	R1sync  one node, sync_interval always: every write is fsync'd before the ack
//	R3      three nodes on loopback, streams and consumers with 3 replicas (ack after a quorum of 2)
//	R3sync  the same with sync_interval always on every node
//
// In R3 every client connects to a node that does not lead the stream (or consumer) it uses,
// so each request crosses one route, as it does for most clients of a real cluster.
func BenchmarkCluster(b *testing.B) {
	for _, tp := range []struct {
		name     string
		replicas int
		sync     bool
	}{{"R1", 1, false}, {"R1sync", 1, true}, {"R3", 3, false}, {"R3sync", 3, true}} {
		b.Run(tp.name, func(b *testing.B) {
			e := startClusterEnv(b, tp.replicas, tp.sync)
			if !tp.sync {
				b.Run("core-pubsub", e.benchCorePubSub)
			}
			b.Run("pub-async", e.benchPublishAsync)
			b.Run("pub-sync", e.benchPublishSync)
			b.Run("consume-1inst", func(b *testing.B) { e.benchConsume(b, 1) })
			b.Run("consume-2inst", func(b *testing.B) { e.benchConsume(b, 2) })
			b.Run("kv-put", e.benchKVPut)
			b.Run("kv-get", e.benchKVGet)
		})
	}
}

const (
	clusterPublishers = 4   // async publishers, each on its own connection
	clusterWindow     = 128 // async publishes outstanding per publisher
	clusterFetch      = 256 // the consumer kit's MaxChunk
	clusterKVClients  = 16  // concurrent KV writers/readers (gateway sessions connecting at once)
)

// clusterEnv is one topology: a single node or a natsxtest.Cluster.
type clusterEnv struct {
	replicas int
	single   *server.Server
	cluster  *natsxtest.Cluster
	payload  []byte
	seq      atomic.Int64
}

func startClusterEnv(b *testing.B, replicas int, syncAlways bool) *clusterEnv {
	e := &clusterEnv{replicas: replicas}
	var err error
	if e.payload, err = chatPayload(len(benchText), benchText); err != nil {
		b.Fatal(err)
	}
	if replicas == 1 {
		srv, err := natsx.StartServer(natsx.ServerConfig{Name: "bench-r1", Dir: b.TempDir(), Port: -1, SyncAlways: syncAlways}, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		e.single = srv
		return e
	}
	e.cluster = natsxtest.StartClusterWith(b, replicas, func(_ int, cfg *natsx.ServerConfig) { cfg.SyncAlways = syncAlways })
	return e
}

func (e *clusterEnv) nodes() int {
	if e.cluster == nil {
		return 1
	}
	return len(e.cluster.Servers)
}

// connect opens a TCP connection to node i (mod the node count), closed when b's round ends.
func (e *clusterEnv) connect(b *testing.B, i int) *nats.Conn {
	url := ""
	if e.cluster == nil {
		url = e.single.ClientURL()
	} else {
		url = e.cluster.ClientURL(i % e.nodes())
	}
	nc, err := natsx.Connect(url, "bench-cluster", nil, zap.NewNop(), nats.DontRandomize())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

func (e *clusterEnv) servers() []*server.Server {
	if e.cluster == nil {
		return []*server.Server{e.single}
	}
	return e.cluster.Servers
}

// away returns a node that is not the one lead reports as leader (node 0 for a single node).
func (e *clusterEnv) away(lead func(*server.Server) bool) int {
	if e.cluster == nil {
		return 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range e.servers() {
			if s != nil && lead(s) {
				return (i + 1) % e.nodes()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

func (e *clusterEnv) awayFromStream(name string) int {
	return e.away(func(s *server.Server) bool { return s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, name) })
}

// stream creates a fresh stream configured like CHAT (with the topology's replicas), deleted
// when b's round ends, and returns its name and subject prefix.
func (e *clusterEnv) stream(b *testing.B, js jetstream.JetStream) (string, string) {
	n := e.seq.Add(1)
	name, prefix := fmt.Sprintf("CB%d", n), fmt.Sprintf("cb%d", n)
	sc := streams.Define(streams.DefaultOptions()).Streams[0]
	sc.Name, sc.Subjects, sc.Description, sc.Replicas = name, []string{prefix + ".>"}, "natter cluster bench", e.replicas
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, sc); err != nil {
		b.Fatalf("create stream: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, name)
	})
	return name, prefix
}

// admin is a connection and JetStream context for setting up (and tearing down) a round.
func (e *clusterEnv) admin(b *testing.B) jetstream.JetStream {
	js, err := jetstream.New(e.connect(b, 0))
	if err != nil {
		b.Fatal(err)
	}
	return js
}

func (e *clusterEnv) chatMsg(subject, id string) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: e.payload, Header: nats.Header{}}
	m.Header.Set(streams.HeaderMsgID, id)
	m.Header.Set(streams.HeaderVersion, streams.VersionValue)
	return m
}

// measure wraps the timed part of a round: it reports msgs/s, process CPU per message and the
// cores other processes used meanwhile (noise).
type measure struct {
	b     *testing.B
	cpu0  time.Duration
	cont  *contention
	start time.Time
}

func startMeasure(b *testing.B) *measure {
	m := &measure{b: b, cont: startContention(cpuMeter{})}
	m.cpu0, _ = cpuMeter{}.read()
	m.start = time.Now()
	b.ResetTimer()
	return m
}

func (m *measure) stop(msgs int) {
	m.b.StopTimer()
	elapsed := time.Since(m.start)
	cpu1, _ := cpuMeter{}.read()
	m.b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
	m.b.ReportMetric(float64(cpu1-m.cpu0)/1e3/float64(msgs), "cpu-µs/msg")
	m.b.ReportMetric(m.cont.otherCores(elapsed), "other-cores")
}

func reportLatency(b *testing.B, h *hist, prefix string) {
	b.ReportMetric(float64(h.quantile(0.50))/1e3, prefix+"p50-µs")
	b.ReportMetric(float64(h.quantile(0.99))/1e3, prefix+"p99-µs")
}

// benchCorePubSub is the raw baseline: core NATS publish of the same payload from one
// connection to a subscriber on another (on another node in R3: across a route), with at most
// 8192 messages in flight. An op is one message received.
func (e *clusterEnv) benchCorePubSub(b *testing.B) {
	pub, sub := e.connect(b, 0), e.connect(b, 1)
	const window = 8192
	win := make(chan struct{}, window)
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	s, err := sub.Subscribe("core.bench", func(*nats.Msg) {
		<-win
		if got.Add(1) == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Unsubscribe() }()
	_ = s.SetPendingLimits(-1, -1)
	if err := sub.Flush(); err != nil {
		b.Fatal(err)
	}
	// In R3 the subscription must have crossed the route before the first publish.
	time.Sleep(100 * time.Millisecond)
	m := startMeasure(b)
	for range b.N {
		win <- struct{}{}
		if err := pub.Publish("core.bench", e.payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("received %d of %d", got.Load(), b.N)
	}
	m.stop(b.N)
}

// benchPublishAsync: clusterPublishers connections each keep clusterWindow async publishes
// outstanding to a CHAT-like stream, every message with a unique Nats-Msg-Id. An op is one
// acknowledged message; publish→ack latency under this load is reported too.
func (e *clusterEnv) benchPublishAsync(b *testing.B) {
	name, prefix := e.stream(b, e.admin(b))
	node := e.awayFromStream(name)
	jss := make([]jetstream.JetStream, clusterPublishers)
	for p := range jss {
		js, err := jetstream.New(e.connect(b, node), jetstream.WithPublishAsyncMaxPending(clusterWindow+16))
		if err != nil {
			b.Fatal(err)
		}
		jss[p] = js
	}
	hists := make([]hist, clusterPublishers)
	errs := make(chan error, clusterPublishers)
	var wg sync.WaitGroup
	m := startMeasure(b)
	for p := range clusterPublishers {
		share := b.N / clusterPublishers
		if p < b.N%clusterPublishers {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			type pending struct {
				f  jetstream.PubAckFuture
				at time.Time
			}
			ring := make([]pending, 0, clusterWindow)
			wait := func(pd pending) bool {
				select {
				case <-pd.f.Ok():
					hists[p].record(time.Since(pd.at))
					return true
				case err := <-pd.f.Err():
					errs <- err
				case <-time.After(30 * time.Second):
					errs <- fmt.Errorf("no publish ack within 30s")
				}
				return false
			}
			subject := fmt.Sprintf("%s.c%d.msg", prefix, p)
			for i := range share {
				if len(ring) == clusterWindow {
					if !wait(ring[0]) {
						return
					}
					ring = append(ring[:0], ring[1:]...)
				}
				at := time.Now()
				f, err := jss[p].PublishMsgAsync(e.chatMsg(subject, "p"+strconv.Itoa(p)+":"+strconv.Itoa(i)))
				if err != nil {
					errs <- err
					return
				}
				ring = append(ring, pending{f, at})
			}
			for _, pd := range ring {
				if !wait(pd) {
					return
				}
			}
		}()
	}
	wg.Wait()
	m.stop(b.N)
	select {
	case err := <-errs:
		b.Fatalf("async publish: %v", err)
	default:
	}
	var h hist
	for i := range hists {
		h.merge(&hists[i])
	}
	reportLatency(b, &h, "ack-")
}

// benchPublishSync: one publisher, one synchronous publish at a time; an op is one publish→ack
// round trip, the latency a gateway adds to every send.
func (e *clusterEnv) benchPublishSync(b *testing.B) {
	name, prefix := e.stream(b, e.admin(b))
	js, err := jetstream.New(e.connect(b, e.awayFromStream(name)))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	subject := prefix + ".c1.msg"
	var h hist
	m := startMeasure(b)
	for i := range b.N {
		at := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.PublishMsg(pctx, e.chatMsg(subject, "s:"+strconv.Itoa(i)))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		h.record(time.Since(at))
	}
	m.stop(b.N)
	reportLatency(b, &h, "ack-")
}

// benchConsume: b.N events are published first (untimed); then instances pull them through one
// durable consumer configured like the persister's (explicit ack, max ack pending 10,000), each
// instance on its own connection doing what the consumer kit does — Fetch up to 256, Ack each.
// An op is one event fetched and acknowledged; the round ends when the server has applied every
// ack (ack floor = b.N).
func (e *clusterEnv) benchConsume(b *testing.B, instances int) {
	admin := e.admin(b)
	name, prefix := e.stream(b, admin)
	pubJS, err := jetstream.New(e.connect(b, e.awayFromStream(name)), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	ring := make([]jetstream.PubAckFuture, 0, 512)
	wait := func(f jetstream.PubAckFuture) {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatalf("prepublish: %v", err)
		case <-time.After(60 * time.Second):
			b.Fatal("prepublish: no ack within 60s")
		}
	}
	for i := range b.N {
		if len(ring) == cap(ring) {
			wait(ring[0])
			ring = append(ring[:0], ring[1:]...)
		}
		f, err := pubJS.PublishMsgAsync(e.chatMsg(prefix+".c1.msg", "c:"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		ring = append(ring, f)
	}
	for _, f := range ring {
		wait(f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cc := streams.Define(streams.DefaultOptions()).Consumers[streams.ChatStream][0] // persister
	cc.Durable, cc.FilterSubject, cc.Replicas = "bench", prefix+".>", e.replicas
	if _, err := admin.CreateConsumer(ctx, name, cc); err != nil {
		b.Fatalf("create consumer: %v", err)
	}
	node := e.away(func(s *server.Server) bool {
		return s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, name, "bench")
	})
	conss := make([]jetstream.Consumer, instances)
	for k := range conss {
		js, err := jetstream.New(e.connect(b, node+k))
		if err != nil {
			b.Fatal(err)
		}
		if conss[k], err = js.Consumer(ctx, name, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	var got atomic.Int64
	n := int64(b.N)
	errs := make(chan error, instances)
	var wg sync.WaitGroup
	m := startMeasure(b)
	for k := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got.Load() < n && ctx.Err() == nil {
				batch, err := conss[k].Fetch(clusterFetch, jetstream.FetchMaxWait(100*time.Millisecond))
				if err != nil {
					errs <- err
					return
				}
				for msg := range batch.Messages() {
					if err := msg.Ack(); err != nil {
						errs <- err
						return
					}
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("consume: %v", err)
	default:
	}
	for {
		info, err := conss[0].Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.AckFloor.Stream >= uint64(b.N) {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("ack floor %d of %d", info.AckFloor.Stream, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	m.stop(b.N)
}

// kvBucket creates a bucket configured like routes (TTL 10 min, history 1, file) with the
// topology's replicas, and returns handles on clusterKVClients connections.
func (e *clusterEnv) kvBucket(b *testing.B) []jetstream.KeyValue {
	admin := e.admin(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket := fmt.Sprintf("kvbench%d", e.seq.Add(1))
	kc := streams.Define(streams.DefaultOptions()).Buckets[0] // routes
	kc.Bucket, kc.Replicas = bucket, e.replicas
	if _, err := admin.CreateKeyValue(ctx, kc); err != nil {
		b.Fatalf("create bucket: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = admin.DeleteKeyValue(ctx, bucket)
	})
	node := e.awayFromStream("KV_" + bucket)
	kvs := make([]jetstream.KeyValue, clusterKVClients)
	for k := range kvs {
		js, err := jetstream.New(e.connect(b, node+k%2)) // both non-leader nodes in R3
		if err != nil {
			b.Fatal(err)
		}
		if kvs[k], err = js.KeyValue(ctx, bucket); err != nil {
			b.Fatal(err)
		}
	}
	return kvs
}

func routeValue() []byte {
	v, _ := json.Marshal(streams.Route{Gateway: "gw-01J9Z8Q4W5X6Y7Z8A9B0C1D2E3", Conn: "01J9Z8Q4W5X6Y7Z8A9B0C1D2E3", Since: time.Now().UnixMilli()})
	return v
}

func routeKey(i int) string { return "01J9Z8Q4W5X6Y7Z8A9B" + strconv.Itoa(1000000+i) + ".d1" }

// runKV spreads b.N operations over clusterKVClients goroutines and reports ops/s and latency.
func runKV(b *testing.B, kvs []jetstream.KeyValue, op func(kv jetstream.KeyValue, i int) error) {
	hists := make([]hist, len(kvs))
	var next atomic.Int64
	errs := make(chan error, len(kvs))
	var wg sync.WaitGroup
	m := startMeasure(b)
	for k := range kvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				at := time.Now()
				if err := op(kvs[k], i); err != nil {
					errs <- err
					return
				}
				hists[k].record(time.Since(at))
			}
		}()
	}
	wg.Wait()
	m.stop(b.N)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	var h hist
	for i := range hists {
		h.merge(&hists[i])
	}
	reportLatency(b, &h, "")
}

// benchKVPut: what every connect costs — one Put of a route, acknowledged; clusterKVClients at
// once. An op is one acknowledged Put of a distinct key.
func (e *clusterEnv) benchKVPut(b *testing.B) {
	kvs := e.kvBucket(b)
	val := routeValue()
	ctx := context.Background()
	runKV(b, kvs, func(kv jetstream.KeyValue, i int) error {
		_, err := kv.Put(ctx, routeKey(i), val)
		return err
	})
}

// benchKVGet: Get of one of 10,000 existing routes (direct get: any replica may answer),
// clusterKVClients at once. An op is one Get.
func (e *clusterEnv) benchKVGet(b *testing.B) {
	const keys = 10000
	kvs := e.kvBucket(b)
	val := routeValue()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(kvs))
	for k := range kvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < keys; i += len(kvs) {
				if _, err := kvs[k].Put(ctx, routeKey(i), val); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	runKV(b, kvs, func(kv jetstream.KeyValue, i int) error {
		_, err := kv.Get(ctx, routeKey(i*7919%keys))
		return err
	})
}
