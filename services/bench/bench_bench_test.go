package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/streams"
)

// These benchmarks put natter's send path beside its raw baselines, with the same payload and
// the same window: compare BenchmarkSendAck1to1 with BenchmarkJetStreamPublishAsync (the stream
// write alone) and BenchmarkWSEchoPipelined (the socket alone). natter bench is the full
// harness; these are quick and profile well (go test -bench . -cpuprofile).

const benchWindow = 8

var benchText = strings.Repeat("x", 100)

// shared is one in-process natter with two connected users in a direct conversation, started by
// the first benchmark that needs it and stopped by TestMain.
var shared struct {
	once sync.Once
	err  error
	t    *target
	e    *engine
	conv string
}

func sharedNatter(b *testing.B) (*engine, string) {
	shared.once.Do(func() {
		cfg := DefaultConfig()
		cfg.Users = 2
		ctx := context.Background()
		t, err := startTarget(ctx, cfg, zap.NewNop())
		if err != nil {
			shared.err = err
			return
		}
		shared.t = t
		e := newEngine(cfg, t, zap.NewNop())
		shared.e = e
		if shared.err = e.signup(ctx, 2); shared.err != nil {
			return
		}
		if shared.err = e.connect(ctx); shared.err != nil {
			return
		}
		p, err := e.oneToOnePlan(ctx)
		if err != nil {
			shared.err = err
			return
		}
		shared.conv = p.senders[e.clients[0]]
		shared.err = e.probe(ctx, p.senders)
	})
	if shared.err != nil {
		b.Fatalf("start natter: %v", shared.err)
	}
	return shared.e, shared.conv
}

func stopShared() {
	if shared.e != nil {
		shared.e.close()
	}
	if shared.t != nil {
		_ = shared.t.stop()
	}
}

// BenchmarkSendAck1to1 is one natter connection sending into a direct conversation with
// benchWindow sends outstanding; an op is one acknowledged (durable) message. It waits for the
// deliveries too, so the op's cost includes fan-out to both members.
func BenchmarkSendAck1to1(b *testing.B) {
	e, conv := sharedNatter(b)
	c, peer := e.clients[0], e.clients[1]
	id := e.phase.Add(1)
	st, pst := &clientStats{phase: id, errs: map[string]uint64{}}, &clientStats{phase: id, errs: map[string]uint64{}}
	win := make(chan struct{}, benchWindow)
	c.mu.Lock()
	c.st, c.window = st, win
	c.mu.Unlock()
	peer.mu.Lock()
	peer.st = pst
	peer.mu.Unlock()
	c.prepare(conv, benchText)
	ctx := context.Background()
	e.measuring.Store(true)
	defer e.measuring.Store(false)
	b.SetBytes(int64(len(benchText)))
	b.ResetTimer()
	for range b.N {
		win <- struct{}{}
		if err := c.send(ctx, id, st); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		acked, errs := st.acked, len(st.errs)
		c.mu.Unlock()
		peer.mu.Lock()
		delivered := pst.delivered
		peer.mu.Unlock()
		if errs > 0 {
			b.Fatalf("errors: %v", st.errs)
		}
		if acked == uint64(b.N) && delivered == uint64(b.N) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("acked %d, delivered %d of %d", acked, delivered, b.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	c.mu.Lock()
	b.ReportMetric(float64(st.ack.quantile(0.99))/1e6, "p99-ack-ms")
	c.st, c.window = nil, nil
	c.mu.Unlock()
	peer.mu.Lock()
	peer.st = nil
	peer.mu.Unlock()
}

// BenchmarkJetStreamPublishAsync is the raw baseline of BenchmarkSendAck1to1: the same payload
// published asynchronously to a stream configured like CHAT, with the same window.
func BenchmarkJetStreamPublishAsync(b *testing.B) {
	dir := b.TempDir()
	srv, err := natsx.StartServer(natsx.ServerConfig{Name: "bench", Dir: dir, Port: -1}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := natsx.Connect("", "bench", srv, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	sc := streams.Define(streams.DefaultOptions()).Streams[0]
	sc.Name, sc.Subjects = "BENCH", []string{"bench.>"}
	if _, err := js.CreateStream(context.Background(), sc); err != nil {
		b.Fatal(err)
	}
	payload, err := chatPayload(len(benchText), benchText)
	if err != nil {
		b.Fatal(err)
	}
	ring := make([]jetstream.PubAckFuture, 0, benchWindow)
	wait := func(f jetstream.PubAckFuture) {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(benchText)))
	b.ResetTimer()
	for i := range b.N {
		if len(ring) == benchWindow {
			wait(ring[0])
			ring = append(ring[:0], ring[1:]...)
		}
		msg := &nats.Msg{Subject: "bench.c1.msg", Data: payload, Header: nats.Header{}}
		msg.Header.Set(streams.HeaderMsgID, "b:"+strconv.Itoa(i))
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			b.Fatal(err)
		}
		ring = append(ring, f)
	}
	for _, f := range ring {
		wait(f)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkWSEchoPipelined is the socket baseline: natter's send frame echoed by a bare
// coder/websocket server, with the same window.
func BenchmarkWSEchoPipelined(b *testing.B) {
	s, err := startEcho()
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	hc := wsHTTPClient()
	c, err := dialWS(context.Background(), hc, s.url())
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	frame := sampleFrame(benchText)
	ctx := context.Background()
	done := make(chan error, 1)
	win := make(chan struct{}, benchWindow)
	b.SetBytes(int64(len(benchText)))
	b.ResetTimer()
	go func() {
		buf := make([]byte, 0, len(frame)+64)
		var err error
		for range b.N {
			if buf, err = readFrame(ctx, c, buf); err != nil {
				done <- err
				return
			}
			<-win
		}
		done <- nil
	}()
	for range b.N {
		win <- struct{}{}
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(fmt.Errorf("echo: %w", err))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkCatchUp is the catch-up of the peers comparison in process: a device reconnects with
// the cursor it had before catchUpMessages were sent to its user, and reads up to its synced
// frame; an op is one such reconnect, from the dial to the synced frame.
func BenchmarkCatchUp(b *testing.B) {
	const catchUpMessages = 10_000
	ctx := context.Background()
	t, err := startTarget(ctx, DefaultConfig(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = t.stop() }()
	e := &peerEngine{cfg: DefaultPeersConfig(), hc: t.http, epoch: time.Now(), text: benchText, tag: "cu"}
	s := &natterSide{t: t}
	e.side = s
	sender, err := t.signup(ctx, "cu_sender")
	if err != nil {
		b.Fatal(err)
	}
	receiver, err := t.signup(ctx, "cu_receiver")
	if err != nil {
		b.Fatal(err)
	}
	if s.cu, err = t.direct(ctx, sender, receiver); err != nil {
		b.Fatal(err)
	}
	s.users = []user{sender, receiver}
	ws, cursor, _, err := s.dialNatter(ctx, e, receiver, "away", -1)
	if err != nil {
		b.Fatal(err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	err = sendInBatches(ctx, catchUpMessages, func(k int) (*peerConn, error) {
		ws, _, _, err := s.dialNatter(ctx, e, sender, fmt.Sprintf("s%d", k), -1)
		if err != nil {
			return nil, err
		}
		return newPeerConn(e, k, 0, ws, false), nil
	}, s.cu)
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); s.backlog(ctx) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	b.ResetTimer()
	for range b.N {
		ws, _, got, err := s.dialNatter(ctx, e, receiver, "away", cursor)
		if err != nil {
			b.Fatal(err)
		}
		_ = ws.CloseNow()
		if got != catchUpMessages {
			b.Fatalf("caught up on %d of %d messages", got, catchUpMessages)
		}
	}
}
