package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Batches written corked and frames written through at the same time, as the session writer and
// catch-up do, past the websocket.Conn (writeText), while the Conn pings on its own, reach the
// client whole, each exactly once, and in each writer's order, whatever each frame's length
// encoding; with frames=lines, several to a message (one per line, at most maxLinesBytes unless
// one frame is larger), the Conn's control frames between them.
func TestCorkedBatchesAndDirectWritesKeepEveryFrameInOrder(t *testing.T) {
	for _, lines := range []bool{false, true} {
		t.Run(fmt.Sprintf("lines=%v", lines), func(t *testing.T) { corkedBatchesAndDirectWrites(t, lines) })
	}
}

func corkedBatchesAndDirectWrites(t *testing.T, lines bool) {
	const batches, perBatch, direct = 200, 25, 2000
	// Payload lengths about each boundary of the three length encodings (7 bits, 16, 64).
	sizes := []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}
	srv := corkedServer(t, func(conn *websocket.Conn, cc *corkConn) {
		cc.mu.Lock()
		cc.lines = lines
		cc.mu.Unlock()
		ctx, stopPings := context.WithCancel(context.Background())
		pinged := make(chan struct{})
		go func() { // the heartbeat: control frames written by the Conn itself
			defer close(pinged)
			for ctx.Err() == nil {
				if err := conn.Ping(ctx); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the session writer
			defer wg.Done()
			for b := range batches {
				cc.cork()
				for i := range perBatch {
					pad := 3
					if i == 0 {
						pad = sizes[b%len(sizes)]
					}
					if err := cc.writeText(fmt.Appendf(nil, "A %d %s", b*perBatch+i, strings.Repeat("a", pad))); err != nil {
						t.Error(err)
						return
					}
				}
				if err := cc.uncork(5 * time.Second); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() { // catch-up, writing through
			defer wg.Done()
			for j := range direct {
				if err := cc.writeText(fmt.Appendf(nil, "B %d", j)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		wg.Wait()
		stopPings()
		<-pinged
		_ = conn.Close(websocket.StatusNormalClosure, "")
	})

	ctx, c := dialServer(t, srv)
	c.SetReadLimit(1 << 20)
	next := map[string]int{"A": 0, "B": 0}
	messages := 0
	for next["A"] < batches*perBatch || next["B"] < direct {
		typ, message, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after A %d, B %d: %v", next["A"], next["B"], err)
		}
		messages++
		frames := [][]byte{message}
		if lines {
			frames = bytes.Split(message, []byte{'\n'})
			if len(message) > maxLinesBytes && len(frames) > 1 {
				t.Fatalf("a message of %d frames has %d bytes, over %d", len(frames), len(message), maxLinesBytes)
			}
		}
		for _, data := range frames {
			var who string
			var n int
			if _, err := fmt.Sscanf(string(data), "%s %d", &who, &n); err != nil || n != next[who] || typ != websocket.MessageText {
				t.Fatalf("got %v %.40q, want text %s %d", typ, data, who, next[who])
			}
			if who == "A" && n%perBatch == 0 {
				if want := len(fmt.Sprintf("A %d ", n)) + sizes[(n/perBatch)%len(sizes)]; len(data) != want {
					t.Fatalf("frame A %d has %d bytes, want %d", n, len(data), want)
				}
			}
			next[who]++
		}
	}
	if frames := batches*perBatch + direct; lines == (messages == frames) {
		t.Fatalf("%d frames came in %d messages (lines %v)", frames, messages, lines)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after the last frame: %v, want the server's normal close", err)
	}
}

// Once the session closes, no frame follows the close frame: writeText refuses.
func TestNoFrameAfterClose(t *testing.T) {
	refused := make(chan error, 1)
	srv := corkedServer(t, func(conn *websocket.Conn, cc *corkConn) {
		_ = cc.writeText([]byte("last"))
		cc.closeFrames()
		refused <- cc.writeText([]byte("after close"))
		_ = conn.Close(websocket.StatusGoingAway, "bye")
	})

	ctx, c := dialServer(t, srv)
	if _, data, err := c.Read(ctx); err != nil || string(data) != "last" {
		t.Fatalf("first read %q, %v", data, err)
	}
	if _, data, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after the last frame: %q, %v, want the close", data, err)
	}
	if err := <-refused; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a frame after closeFrames: %v, want net.ErrClosed", err)
	}
}

// The write deadline stays armed between writes: a write long after the last one (longer than
// twice the timeout) still gets a fresh deadline and goes through, and a peer that stops reading makes
// a write fail within the timeout instead of blocking for ever.
func TestCorkDeadlineIsRearmedAndBoundsEveryWrite(t *testing.T) {
	const timeout = 200 * time.Millisecond
	raw, peer := tcpPair(t)
	c := &corkConn{Conn: raw}

	c.cork()
	if _, err := c.Write([]byte("corked")); err != nil {
		t.Fatal(err)
	}
	if err := c.uncork(timeout); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout) // the deadline armed by uncork has passed
	if _, err := c.Write([]byte("direct")); err != nil {
		t.Fatalf("a write after an idle spell longer than the timeout: %v", err)
	}
	c.cork()
	_, _ = c.Write([]byte("again"))
	time.Sleep(3 * timeout)
	if err := c.uncork(timeout); err != nil {
		t.Fatalf("an uncork after an idle spell longer than the timeout: %v", err)
	}
	got := make([]byte, len("corkeddirectagain"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "corkeddirectagain" {
		t.Fatalf("peer read %q, %v", got, err)
	}

	// The peer stops reading: writes fill the socket buffers, then one fails on its deadline.
	chunk := make([]byte, 1<<20)
	failed := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(chunk); err != nil {
				failed <- err
				return
			}
		}
	}()
	select {
	case err := <-failed:
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("write to a peer that does not read: %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write to a peer that does not read never timed out")
	}
}

// TestCorksNest: the socket stays corked until every cork is out; the last uncork writes what
// each held back, in order.
func TestCorksNest(t *testing.T) {
	raw, peer := tcpPair(t)
	c := &corkConn{Conn: raw}

	c.cork() // the session writer
	_, _ = c.Write([]byte("answer,"))
	c.cork() // catch-up
	_, _ = c.Write([]byte("history,"))
	if err := c.uncork(time.Second); err != nil {
		t.Fatal(err)
	}
	if held := c.heldBytes(); string(held) != "answer,history," {
		t.Fatalf("after the first of two uncorks %q is held, want both writes", held)
	}
	_, _ = c.Write([]byte("more"))
	if err := c.uncork(time.Second); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("answer,history,more"))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "answer,history,more" || c.held != nil {
		t.Fatalf("peer read %q, %v; %q still held", got, err, c.heldBytes())
	}
}

// corkedServer serves WebSockets accepted through a corkingWriter, handing serve each Conn with
// its corkConn; it is closed at the end of the test.
func corkedServer(t *testing.T, serve func(conn *websocket.Conn, cc *corkConn)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkingWriter{ResponseWriter: w}
		conn, err := websocket.Accept(cw, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Error(err)
			return
		}
		serve(conn, cw.conn)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tcpPair is a connected pair of loopback TCP sockets, closed at the end of the test: the
// server's side of a connection and its peer.
func tcpPair(t *testing.T) (server, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = server.Close() })
	return server, peer
}

// echoServer accepts WebSockets through a corkingWriter, as the gateway does, and echoes every
// message back until the client closes.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(&corkingWriter{ResponseWriter: w}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		for {
			typ, data, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			if err := conn.Write(r.Context(), typ, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Each socket reads and writes through buffers of socketBuffer bytes, not net/http's 4 KiB
// ones; frames of any size pass them both ways.
func TestSocketBuffersAreSmallAndPassFramesOfAnySize(t *testing.T) {
	rec := httptest.NewRecorder()
	hijacker := &hijackRecorder{ResponseRecorder: rec, t: t}
	_, brw, err := (&corkingWriter{ResponseWriter: hijacker}).Hijack()
	if err != nil {
		t.Fatal(err)
	}
	if brw.Reader.Size() != socketBuffer || brw.Writer.Size() != socketBuffer {
		t.Fatalf("socket buffers of %d and %d bytes, want %d", brw.Reader.Size(), brw.Writer.Size(), socketBuffer)
	}

	ctx, c := dialServer(t, echoServer(t))
	c.SetReadLimit(1 << 20)
	for _, n := range []int{0, 1, socketBuffer - 4, socketBuffer, socketBuffer + 1, 5000, 300_000} {
		msg := []byte(strings.Repeat("x", n))
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != string(msg) {
			t.Fatalf("a frame of %d bytes came back as %d bytes, %v", n, len(got), err)
		}
	}
}

// hijackRecorder is a ResponseRecorder that can be hijacked: its conn is one side of a
// loopback pair, and its reader holds nothing.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	t *testing.T
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	server, _ := tcpPair(h.t)
	return server, bufio.NewReadWriter(bufio.NewReader(server), bufio.NewWriter(server)), nil
}

// A frame the client sends in the same write as its upgrade request reaches net/http's buffer
// before the upgrade: the socket keeps reading that buffer, so the frame is not lost.
func TestAFrameSentWithTheUpgradeRequestIsRead(t *testing.T) {
	srv := echoServer(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: natter\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	payload, mask := []byte("early"), [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload)), mask[0], mask[1], mask[2], mask[3]} // FIN, text, masked
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("no echo of the frame sent with the upgrade request: %v", err)
	}
	got := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(br, got); err != nil || head[0] != 0x81 || string(got) != "early" {
		t.Fatalf("echo %x %q, %v", head, got, err)
	}
}

// TestBatchesShareHeldBuffers: a socket holds a buffer only while it holds bytes back, and
// batches of any size, one after another, reach the peer whole and in order through the buffers
// the sockets lend each other.
func TestBatchesShareHeldBuffers(t *testing.T) {
	raw, peer := tcpPair(t)
	c := &corkConn{Conn: raw}
	var want bytes.Buffer
	received := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(peer)
		received <- got
	}()
	for batch, size := range []int{10, 5000, 100, 300 << 10, 1, 2 << 20, 7} {
		c.cork()
		for i := range 3 {
			p := bytes.Repeat([]byte{byte('a' + (batch+i)%26)}, size)
			want.Write(p)
			_, _ = c.Write(p)
		}
		if err := c.uncork(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if c.held != nil {
			t.Fatalf("after batch %d the socket keeps a buffer of %d bytes", batch, cap(*c.held))
		}
	}
	_ = raw.Close()
	if got := <-received; !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the peer read %d bytes, not the %d written in order", len(got), want.Len())
	}
}

// dialServer opens a WebSocket to srv, closed at the end of the test, with a context that ends then
// or after 30 s.
func dialServer(t *testing.T, srv *httptest.Server) (context.Context, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return ctx, c
}
