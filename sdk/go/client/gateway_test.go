package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// The client's unit tests run against gateway, a small WebSocket server written here with
// coder/websocket that speaks natter's frames (docs/protocol.md), driven step by step by each
// test. test/sdk runs the same client against a real natter.

// wait bounds every wait of these tests: a safety net, not a timing under test.
const wait = 10 * time.Second

// TestMain checks that no goroutine of the client outlives its tests (the SDK module takes no
// test dependency such as goleak: its module graph is kept to what the client needs).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := clientGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "client goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// clientGoroutines waits up to d for every goroutine running this package's code (other than
// the caller) to end, and returns the stacks of those that did not.
func clientGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "sdk/go/client.(*Client)") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gateway accepts the client's sockets; the test takes each with next and plays the server.
type gateway struct {
	t     *testing.T
	srv   *httptest.Server
	conns chan *gwConn
}

// gwConn is one socket the client opened, seen from the server.
type gwConn struct {
	t      *testing.T
	ws     *websocket.Conn
	query  url.Values
	token  string        // the bearer token of the upgrade
	frames chan []byte   // what the client sent, closed when the socket ends
	done   chan struct{} // closed when the test is done with the socket
	closed sync.Once
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{t: t, conns: make(chan *gwConn, 16)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		c := &gwConn{t: t, ws: ws, query: r.URL.Query(), token: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
			frames: make(chan []byte, 64), done: make(chan struct{})}
		go func() { // reads until the socket ends, which also answers the client's close
			defer close(c.frames)
			for {
				_, data, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				c.frames <- data
			}
		}()
		t.Cleanup(func() { c.close(websocket.StatusGoingAway) })
		g.conns <- c
		<-c.done
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) url() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/v1/ws" }

// next is the client's next socket.
func (g *gateway) next() *gwConn {
	g.t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(wait):
		g.t.Fatal("the client did not connect")
		return nil
	}
}

// send writes one server frame.
func (c *gwConn) send(v any) {
	c.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Fatalf("server write: %v", err)
	}
}

// welcome sends welcome and, after the events, synced at cursor.
func (c *gwConn) welcome(cursor uint64, events ...protocol.Event) {
	c.t.Helper()
	c.send(protocol.Welcome{Type: protocol.TypeWelcome, Protocol: 1, UserID: "u1", DeviceID: c.query.Get("device"), EditWindowMS: 900_000})
	for _, e := range events {
		c.send(e)
	}
	c.send(protocol.Synced{Type: protocol.TypeSynced, Cursor: cursor})
}

// read is the client's next frame.
func (c *gwConn) read() protocol.ClientFrame {
	c.t.Helper()
	select {
	case data, ok := <-c.frames:
		if !ok {
			c.t.Fatal("the socket ended while the server waited for a frame")
		}
		var f protocol.ClientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.t.Fatalf("client frame %s: %v", data, err)
		}
		return f
	case <-time.After(wait):
		c.t.Fatal("no frame from the client")
		return protocol.ClientFrame{}
	}
}

// close ends the socket with code (the first close wins) and lets its handler return.
func (c *gwConn) close(code websocket.StatusCode) {
	c.closed.Do(func() {
		_ = c.ws.Close(code, "test")
		_ = c.ws.CloseNow()
		close(c.done)
	})
}

func message(seq uint64, text string) protocol.Event {
	return protocol.Event{Type: protocol.TypeMessage, Seq: seq, ConversationID: "g1", MessageID: fmt.Sprintf("m%d", seq), SenderID: "u2", Text: text}
}

// dial starts a client of g with quick reconnects; it is closed when the test ends.
func dial(t *testing.T, g *gateway, cfg Config) *Client {
	t.Helper()
	if cfg.Discover == nil {
		cfg.URL = g.url()
	}
	if cfg.Token == "" && cfg.TokenSource == nil {
		cfg.Token = "t1"
	}
	if cfg.DeviceID == "" {
		cfg.DeviceID = "phone"
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	c, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// nextEvent is the client's next event.
func nextEvent(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed (client error %v)", c.Err())
		}
		return e
	case <-time.After(wait):
		t.Fatal("no event")
		return Event{}
	}
}

// ended waits for the client to end on its own.
func ended(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-c.Events():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the client did not end")
		}
	}
}
