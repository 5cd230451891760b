package natsx

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/streams"
)

// nats-server's wait for a source consumer outlives a shutdown (see natsxtest.IgnoreServerGoroutines).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3"))
}

func TestApplyIsIdempotentAndRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	run := func(publish bool) uint64 {
		js, stop := startJetStream(t, dir)
		defer stop()
		defs := streams.Define(streams.DefaultOptions())
		for i := 0; i < 2; i++ {
			if err := Apply(ctx, js, defs); err != nil {
				t.Fatalf("apply #%d: %v", i, err)
			}
		}
		if publish {
			if _, err := js.Publish(ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		st, err := js.Stream(ctx, streams.ChatStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Duplicates != streams.DefaultOptions().DuplicateWindow {
			t.Fatalf("duplicate window %s", info.Config.Duplicates)
		}
		for _, b := range []string{streams.RoutesBucket, streams.PresenceBucket, streams.GatewaysBucket} {
			if _, err := js.KeyValue(ctx, b); err != nil {
				t.Fatalf("bucket %s: %v", b, err)
			}
		}
		for _, c := range []string{streams.PersisterConsumer, streams.FanoutConsumer} {
			if _, err := st.Consumer(ctx, c); err != nil {
				t.Fatalf("consumer %s: %v", c, err)
			}
		}
		return info.State.Msgs
	}
	if n := run(true); n != 1 {
		t.Fatalf("first run: %d messages", n)
	}
	if n := run(false); n != 1 {
		t.Fatalf("after restart: %d messages, want 1", n)
	}
}

// A client port in use fails StartServer at once with the listen error, not after the
// readiness timeout with "not ready".
func TestStartServerOnAPortInUseFailsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	start := time.Now()
	srv, err := StartServer(ServerConfig{Dir: t.TempDir(), Host: "127.0.0.1", Port: port}, zap.NewNop())
	took := time.Since(start)
	if err == nil {
		srv.Shutdown()
		t.Fatal("started on a port in use")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error %q: want the listen error naming %s", err, ln.Addr())
	}
	if took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	t.Logf("failed in %s: %v", took, err)
}

// TestConnectToTheEmbeddedServerUsesASocket: the process's own connection to its embedded
// server goes over loopback TCP (a net.Pipe hands every write over synchronously), also when
// the server listens on all interfaces; it stays in-process only for a server that accepts TLS
// clients alone (the TLS test covers that it connects there).
func TestConnectToTheEmbeddedServerUsesASocket(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		srv, err := StartServer(ServerConfig{Dir: t.TempDir(), Host: host, Port: -1}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		nc, err := Connect("", "socket-test", srv, zap.NewNop())
		if err != nil {
			t.Fatalf("host %s: %v", host, err)
		}
		t.Cleanup(nc.Close)
		addr, err := net.ResolveTCPAddr("tcp", nc.ConnectedAddr())
		if err != nil || !addr.IP.IsLoopback() || addr.Port != srv.Addr().(*net.TCPAddr).Port {
			t.Errorf("host %s: connected to %q (%v), want the server's port on loopback", host, nc.ConnectedAddr(), err)
		}
		if err := nc.Publish("socket.test", []byte("x")); err != nil {
			t.Error(err)
		}
		if err := nc.Flush(); err != nil {
			t.Error(err)
		}
	}
}

// TestApplyRemakesAConsumerWhoseAckPolicyChanged: an earlier version made the search and fanout
// consumers with explicit acks, which JetStream cannot change in place. Apply makes them again
// with the definitions' ack policy, starting just after the old ack floor: what was acknowledged
// is not delivered again, nothing after it is skipped, and applying again changes nothing.
func TestApplyRemakesAConsumerWhoseAckPolicyChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, stop := startJetStream(t, t.TempDir())
	defer stop()
	defs := streams.Define(streams.DefaultOptions())
	var earlier []jetstream.ConsumerConfig // the CHAT consumers as an earlier version made them
	for _, cc := range defs.Consumers[streams.ChatStream] {
		if cc.AckPolicy == jetstream.AckAllPolicy {
			cc.AckPolicy = jetstream.AckExplicitPolicy
			earlier = append(earlier, cc)
		}
	}
	if len(earlier) == 0 {
		t.Fatal("no CHAT consumer acks all")
	}
	old := defs
	old.Consumers = map[string][]jetstream.ConsumerConfig{streams.ChatStream: earlier}
	if err := Apply(ctx, js, old); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := js.Publish(ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	const acked = 4 // by each earlier consumer, in order
	for _, cc := range earlier {
		cons, err := js.Consumer(ctx, streams.ChatStream, cc.Durable)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(acked+2, pullOpts(cc, 5*time.Second)...)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			if n++; n <= acked {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n != acked+2 {
			t.Fatalf("%s: pulled %d", cc.Durable, n)
		}
	}

	for i := range 2 {
		if err := Apply(ctx, js, defs); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
	}
	for _, cc := range earlier {
		cons, err := js.Consumer(ctx, streams.ChatStream, cc.Durable)
		if err != nil {
			t.Fatal(err)
		}
		info := cons.CachedInfo()
		if info.Config.AckPolicy != jetstream.AckAllPolicy {
			t.Fatalf("%s: ack policy %s", cc.Durable, info.Config.AckPolicy)
		}
		// The ack floor carries over: the persister's is sync's floor (what the store holds), and
		// a floor that fell or rose across the remake would have sync read too much or skip.
		if info.AckFloor.Stream != acked {
			t.Fatalf("%s: ack floor %d after it was made again, want %d", cc.Durable, info.AckFloor.Stream, acked)
		}
		batch, err := cons.Fetch(20, pullOpts(cc, time.Second)...)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, meta.Sequence.Stream)
		}
		if len(seqs) != 10-acked || seqs[0] != acked+1 || seqs[len(seqs)-1] != 10 {
			t.Fatalf("%s delivers %v after it was made again, want %d..10", cc.Durable, seqs, acked+1)
		}
	}
}

// TestApplyLeavesTheAckPolicyItsPullerSets: the persister sets its consumer's ack policy when it
// starts (ack all for the embedded store's one persister). Apply makes a missing consumer with
// the declared policy and leaves an existing one's as it is, whatever process applies.
func TestApplyLeavesTheAckPolicyItsPullerSets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, stop := startJetStream(t, t.TempDir())
	defer stop()
	defs := streams.Define(streams.DefaultOptions())
	if !defs.SetByPuller(streams.ChatStream, streams.PersisterConsumer) {
		t.Fatal("the persister's puller does not set its ack policy")
	}
	policy := func() jetstream.AckPolicy {
		t.Helper()
		cons, err := js.Consumer(ctx, streams.ChatStream, streams.PersisterConsumer)
		if err != nil {
			t.Fatal(err)
		}
		return cons.CachedInfo().Config.AckPolicy
	}
	if err := Apply(ctx, js, defs); err != nil {
		t.Fatal(err)
	}
	if got := policy(); got != jetstream.AckExplicitPolicy {
		t.Fatalf("made with ack policy %s, want the declared explicit", got)
	}
	cons, err := js.Consumer(ctx, streams.ChatStream, streams.PersisterConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	cc := info.Config
	cc.AckPolicy = jetstream.AckAllPolicy
	if err := RemakeConsumer(ctx, js, streams.ChatStream, info, cc); err != nil { // as its puller does
		t.Fatal(err)
	}
	for i := range 2 {
		if err := Apply(ctx, js, defs); err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
		if got := policy(); got != jetstream.AckAllPolicy {
			t.Fatalf("apply #%d changed the puller's ack all to %s", i+1, got)
		}
	}
}

// pullOpts pulls from cc for up to wait, in its priority group if it has one.
func pullOpts(cc jetstream.ConsumerConfig, wait time.Duration) []jetstream.FetchOpt {
	opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(wait)}
	if len(cc.PriorityGroups) > 0 {
		opts = append(opts, jetstream.FetchPriorityGroup(cc.PriorityGroups[0]))
	}
	return opts
}

// startJetStream starts an embedded server on dir and connects to it; stop closes both.
func startJetStream(t *testing.T, dir string) (js jetstream.JetStream, stop func()) {
	t.Helper()
	log := zap.NewNop()
	srv, err := StartServer(ServerConfig{Dir: dir, Port: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := Connect("", "test", srv, log)
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	stop = func() { nc.Close(); srv.Shutdown(); srv.WaitForShutdown() }
	if js, err = jetstream.New(nc); err != nil {
		stop()
		t.Fatal(err)
	}
	return js, stop
}
