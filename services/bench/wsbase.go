package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// echoServer is the bare coder/websocket baseline: accept (as natter's gateway does: no
// compression, any origin), then echo every message back, one goroutine per connection.
type echoServer struct {
	srv   *http.Server
	ln    net.Listener
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
	wg    sync.WaitGroup
	serve chan struct{}
}

func startEcho() (*echoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &echoServer{ln: ln, conns: map[*websocket.Conn]struct{}{}, serve: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.serve)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *echoServer) url() string { return "ws://" + s.ln.Addr().String() + "/" }

func (s *echoServer) handle(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.conns == nil { // closing
		s.mu.Unlock()
		_ = c.CloseNow()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.CloseNow()
		s.wg.Done()
	}()
	c.SetReadLimit(protocol.HardFrameBytes)
	ctx := context.Background()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

func (s *echoServer) close() {
	_ = s.srv.Close()
	<-s.serve
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.CloseNow()
	}
	s.wg.Wait()
}

// wsBaseline measures the bare echo server: one client doing round trips one at a time
// (latency), then clients each keeping window frames in flight (throughput). frame is natter's
// send frame, so both move the same bytes.
func wsBaseline(ctx context.Context, cfg Config, clients int, frame []byte) (*RoundTrip, *Throughput, error) {
	s, err := startEcho()
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	hc := wsHTTPClient()
	defer hc.CloseIdleConnections()

	// Round trips.
	c, err := dialWS(ctx, hc, s.url())
	if err != nil {
		return nil, nil, err
	}
	var h hist
	buf := make([]byte, 0, len(frame)+64)
	d := min(cfg.Duration, 2*time.Second)
	start := time.Now()
	var n uint64
	for time.Since(start) < d && ctx.Err() == nil {
		at := time.Now()
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return nil, nil, fmt.Errorf("echo write: %w", err)
		}
		if buf, err = readFrame(ctx, c, buf); err != nil {
			return nil, nil, fmt.Errorf("echo read: %w", err)
		}
		h.record(time.Since(at))
		n++
	}
	_ = c.CloseNow()
	rt := &RoundTrip{What: "coder/websocket echo round trip, one client", PayloadBytes: len(frame),
		PerSec: float64(n) / time.Since(start).Seconds(), Latency: h.summary()}

	// Pipelined.
	conns := make([]*websocket.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.CloseNow()
			}
		}
	}()
	for i := range conns {
		if conns[i], err = dialWS(ctx, hc, s.url()); err != nil {
			return nil, nil, err
		}
	}
	var measuring atomic.Bool
	var count atomic.Uint64
	hists := make([]hist, clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i, c := range conns {
		sent := make(chan time.Time, cfg.Window)
		goClient(&wg, func() { // writer
			defer close(sent)
			for {
				select {
				case <-stop:
					return
				default:
				}
				at := time.Now()
				select {
				case sent <- at:
				case <-stop:
					return
				}
				if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
		goClient(&wg, func() { // reader
			buf := make([]byte, 0, len(frame)+64)
			var err error
			for at := range sent {
				if buf, err = readFrame(ctx, c, buf); err != nil {
					firstErr.CompareAndSwap(nil, err)
					for range sent { // let the writer finish
					}
					return
				}
				if measuring.Load() {
					count.Add(1)
					hists[i].record(time.Since(at))
				}
			}
		})
	}
	meter := cpuMeter{}
	sleep(ctx, cfg.Warmup)
	cpu0, _ := meter.read()
	cont := startContention(meter)
	t0 := time.Now()
	measuring.Store(true)
	sleep(ctx, cfg.Duration)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1, _ := meter.read()
	other := cont.otherCores(elapsed)
	close(stop)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil && !errors.Is(err, context.Canceled) {
		return nil, nil, fmt.Errorf("echo pipelined: %w", err)
	}
	var all hist
	for i := range hists {
		all.merge(&hists[i])
	}
	tp := &Throughput{What: "coder/websocket echo, pipelined", Clients: clients, Window: cfg.Window, PayloadBytes: len(frame),
		Seconds: elapsed.Seconds(), Count: count.Load(), Latency: all.summary(), CPUSeconds: (cpu1 - cpu0).Seconds(), OtherCores: other}
	tp.PerSec = float64(tp.Count) / tp.Seconds
	if tp.Count > 0 {
		tp.CPUPer1000Msgs = tp.CPUSeconds / float64(tp.Count) * 1000
	}
	return rt, tp, nil
}
