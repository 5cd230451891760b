package gateway_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/services/gateway"
	"github.com/natter-chat/natter/streams"
)

// Sends are published asynchronously (several in flight per socket), yet every ack names a
// message that is in the stream at the acked seq, and one socket's sends get seqs in the order
// they were sent.
func TestPipelinedSendsAreAckedOnlyOnceStoredAndInOrder(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.Gateway.SocketPublishWindow = 8 })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)
	const n = 64
	for i := range n { // no waiting between sends: the gateway has up to 8 in flight
		a.Send(send(conv, fmt.Sprintf("p%02d", i), fmt.Sprintf("text %d", i)))
	}
	chat := chatStream(t, s)
	var last uint64
	for i := range n {
		ack := a.NextOf(protocol.TypeAck, wait)
		if want := fmt.Sprintf("p%02d", i); ack.ClientMsgID != want || ack.Duplicate {
			t.Fatalf("ack %d is %+v, want the ack of %s (acks in send order)", i, ack, want)
		}
		if ack.Seq <= last {
			t.Fatalf("ack of %s has seq %d after %d: one socket's sends must keep their order", ack.ClientMsgID, ack.Seq, last)
		}
		last = ack.Seq
		raw, err := chat.GetMsg(t.Context(), ack.Seq)
		if err != nil {
			t.Fatalf("acked seq %d is not in the stream: %v", ack.Seq, err)
		}
		ev, err := streams.DecodeChatEvent(raw.Data)
		if err != nil || ev.MessageID != ack.MessageID || ev.ClientMsgID != ack.ClientMsgID || ev.ConversationID != conv {
			t.Fatalf("stream has %+v (%v) at acked seq %d, want %+v", ev, err, ack.Seq, ack)
		}
	}
}

// A JetStream that does not answer makes the gateway stop reading the sender's socket once its
// window is full — backpressure through TCP, no queue growing in the gateway — while other
// sockets of the same gateway are served; once JetStream answers again, every send is acked.
//
// JetStream is made to stall with real parts: a second natter process runs only the gateway and
// reaches the first one's NATS server through a TCP proxy that the test pauses.
func TestStalledJetStreamBackpressuresTheSenderOnly(t *testing.T) {
	const window = 4
	core, gw, proxy := gatewayBehindProxy(t, func(c *gateway.Config) {
		c.SocketPublishWindow = window
		c.PublishWindow = 64
		c.PublishTimeout = time.Minute
	})
	alice, bob := core.SignUp("alice"), core.SignUp("bob")
	conv := core.Direct(alice, bob)
	a, b := dial(gw, alice, "a", nil), dial(gw, bob, "b", nil)

	proxy.pause()
	const n = window + 3
	for i := range n {
		a.Send(send(conv, fmt.Sprintf("s%d", i), "while JetStream is stalled"))
	}
	a.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "after-the-sends"})
	b.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "other-socket"})
	if f := b.NextOf(protocol.TypePong, wait); f.Ref != "other-socket" {
		t.Fatalf("other socket got %+v, want its pong", f)
	}
	// Alice's ping waits behind the sends the gateway does not read yet: no answer of any kind.
	for quiet := time.After(time.Second); ; {
		var f apptest.Frame
		select {
		case f = <-a.Frames:
		case <-quiet:
		}
		if f.Type == "" {
			break
		}
		if f.Type == protocol.TypePong || f.Type == protocol.TypeAck || f.Type == protocol.TypeError {
			t.Fatalf("sender got %+v while JetStream was stalled and its window full", f)
		}
	}

	proxy.resume()
	for i := range n {
		if ack := a.NextOf(protocol.TypeAck, wait); ack.ClientMsgID != fmt.Sprintf("s%d", i) || ack.Seq == 0 {
			t.Fatalf("ack %d: %+v", i, ack)
		}
	}
	if f := a.NextOf(protocol.TypePong, wait); f.Ref != "after-the-sends" {
		t.Fatalf("pong %+v", f)
	}
}

// A send JetStream does not acknowledge within PublishTimeout is answered unavailable — the
// message may or may not be in the stream — and its retry with the same client_msg_id, once
// JetStream answers again, is acked with the seq of the one message the stream holds for it.
func TestAnUnacknowledgedSendIsUnavailableAndItsRetryOneMessage(t *testing.T) {
	core, gw, proxy := gatewayBehindProxy(t, func(c *gateway.Config) { c.PublishTimeout = 300 * time.Millisecond })
	alice, bob := core.SignUp("alice"), core.SignUp("bob")
	conv := core.Direct(alice, bob)
	a := dial(gw, alice, "a", nil)

	proxy.pause()
	a.Send(send(conv, "t1", "while JetStream does not answer"))
	if f := a.NextOf(protocol.TypeError, wait); f.Code != string(protocol.CodeUnavailable) || f.Ref != "t1" {
		t.Fatalf("got %+v, want unavailable for t1", f)
	}
	proxy.resume()
	var ack apptest.Frame
	for deadline := time.Now().Add(wait); ; { // the retry may time out too while the proxy catches up
		a.Send(send(conv, "t1", "while JetStream does not answer"))
		if ack = a.Next(wait); ack.Type == protocol.TypeAck || time.Now().After(deadline) {
			break
		}
	}
	if ack.Type != protocol.TypeAck || ack.Ref != "t1" || ack.Seq == 0 {
		t.Fatalf("retry answered %+v, want an ack", ack)
	}
	chat := chatStream(t, core)
	info, err := chat.Info(t.Context(), jetstream.WithSubjectFilter(streams.ChatSubject(conv, streams.KindMsg)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[streams.ChatSubject(conv, streams.KindMsg)]; n != 1 {
		t.Fatalf("%d messages in the stream for one send and its retry, want 1", n)
	}
	if m, err := chat.GetMsg(t.Context(), ack.Seq); err != nil || m.Subject != streams.ChatSubject(conv, streams.KindMsg) {
		t.Fatalf("the acked seq %d holds %v (%v)", ack.Seq, m, err)
	}
}

// gatewayBehindProxy starts natter (core) and a second natter process running only a gateway
// (gw, its gateway configured by configure) that reaches core's NATS server through proxy, which the test
// can pause to stall JetStream under the gateway.
func gatewayBehindProxy(t *testing.T, configure func(*gateway.Config)) (core, gw *apptest.System, proxy *pausableProxy) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	core = apptest.Start(t, func(c *app.Config) { c.JWTSecret = secret })
	proxy = startPausableProxy(t, core.NATSURL)
	gw = apptest.Start(t, func(c *app.Config) {
		c.JWTSecret = secret
		c.Targets = []string{app.TargetGateway}
		c.NATSURL = proxy.url
		c.Store = core.Run.Store
		configure(&c.Gateway)
	})
	return core, gw, proxy
}

// chatStream is s's CHAT stream.
func chatStream(t *testing.T, s *apptest.System) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	chat, err := js.Stream(t.Context(), streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	return chat
}

// pausableProxy forwards TCP connections to a NATS server; while paused it forwards nothing.
type pausableProxy struct {
	url string
	ln  net.Listener

	mu      sync.Mutex
	paused  bool
	resumed *sync.Cond
	conns   []net.Conn
	wg      sync.WaitGroup
}

func startPausableProxy(t *testing.T, upstream string) *pausableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pausableProxy{url: "nats://" + ln.Addr().String(), ln: ln}
	p.resumed = sync.NewCond(&p.mu)
	addr := upstream[len("nats://"):]
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(u, c)
			go p.pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		p.resume()
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *pausableProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.paused {
				p.resumed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or closed at cleanup
			return
		}
	}
}

func (p *pausableProxy) pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

func (p *pausableProxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.resumed.Broadcast()
	p.mu.Unlock()
}
