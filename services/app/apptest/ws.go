package apptest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	neturl "net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Frame is any server frame, decoded loosely for assertions.
type Frame struct {
	Type           string `json:"type"`
	Code           string `json:"code"`
	Message        string `json:"message"`
	Ref            string `json:"ref"`
	ClientMsgID    string `json:"client_msg_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	SenderID       string `json:"sender_id"`
	SenderDevice   string `json:"sender_device"`
	Text           string `json:"text"`
	Seq            uint64 `json:"seq"`
	Cursor         uint64 `json:"cursor"`
	Duplicate      bool   `json:"duplicate"`
	DeviceID       string `json:"device_id"`
	Syncing        bool   `json:"syncing"`
	ExpiresAt      int64  `json:"expires_at"` // welcome, auth: when the socket's access token expires (Unix ms)
	// Raw is the whole frame as received, for fields Frame does not name.
	Raw json.RawMessage `json:"-"`
}

// WS is a raw protocol client for tests: it reads every frame into a channel.
type WS struct {
	T      testing.TB
	Conn   *websocket.Conn
	Frames chan Frame
	Closed chan error // receives the read error (with the close status) when the socket ends
	// Response is the server's answer to the upgrade (its TLS state for wss://).
	Response *http.Response
	// Messages counts the WebSocket messages read; with frames=lines in the URL each is split
	// into its frames, otherwise each is one frame.
	Messages atomic.Int64

	held []Frame // frames NextOf skipped, returned first by later reads
}

// Dial connects to url and starts reading.
func Dial(t testing.TB, url string) *WS {
	t.Helper()
	return DialWith(t, url, nil)
}

// DialWith is Dial with options (a TLS client for wss://, headers).
func DialWith(t testing.TB, url string, opts *websocket.DialOptions) *WS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(protocol.HardFrameBytes)
	w := &WS{T: t, Conn: c, Response: resp, Frames: make(chan Frame, 100_000), Closed: make(chan error, 1)}
	lines := false
	if u, err := neturl.Parse(url); err == nil {
		lines = u.Query().Get(protocol.FramesParam) == protocol.FramesLines
	}
	go func() {
		for {
			_, message, err := c.Read(context.Background())
			if err != nil {
				w.Closed <- err
				close(w.Frames)
				return
			}
			w.Messages.Add(1)
			frames := slices.Values([][]byte{message})
			if lines {
				frames = protocol.Frames(message)
			}
			for data := range frames {
				f := Frame{Raw: data}
				if err := json.Unmarshal(data, &f); err != nil {
					w.Closed <- err
					close(w.Frames)
					return
				}
				w.Frames <- f
			}
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

// Send writes one JSON frame.
func (w *WS) Send(v any) {
	w.T.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		w.T.Fatal(err)
	}
	w.SendRaw(b)
}

// SendRaw writes raw bytes as one text frame.
func (w *WS) SendRaw(b []byte) {
	w.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Conn.Write(ctx, websocket.MessageText, b); err != nil {
		w.T.Fatalf("write: %v", err)
	}
}

// Next returns the next frame, failing the test after timeout.
func (w *WS) Next(timeout time.Duration) Frame {
	w.T.Helper()
	if len(w.held) > 0 {
		f := w.held[0]
		w.held = w.held[1:]
		return f
	}
	return w.read(timeout)
}

func (w *WS) read(timeout time.Duration) Frame {
	w.T.Helper()
	select {
	case f, ok := <-w.Frames:
		if !ok {
			w.T.Fatalf("socket closed while waiting for a frame: %v", w.closeErr())
		}
		return f
	case <-time.After(timeout):
		w.T.Fatalf("no frame within %s", timeout)
	}
	return Frame{}
}

// NextOf returns the next frame of type typ. Frames of other types stay, in order, for later
// calls of Next and NextOf.
func (w *WS) NextOf(typ string, timeout time.Duration) Frame {
	w.T.Helper()
	return w.NextOfAny(timeout, typ)
}

// NextOfAny returns the next frame of any of the given types, holding back the others.
func (w *WS) NextOfAny(timeout time.Duration, types ...string) Frame {
	w.T.Helper()
	for i, f := range w.held {
		if slices.Contains(types, f.Type) {
			w.held = append(w.held[:i], w.held[i+1:]...)
			return f
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		f := w.read(time.Until(deadline))
		if slices.Contains(types, f.Type) {
			return f
		}
		w.held = append(w.held, f)
	}
}

// TryNextOf returns the next frame of type typ if one arrives within timeout, holding back frames
// of other types as NextOf does. A socket that ends fails the test.
func (w *WS) TryNextOf(typ string, timeout time.Duration) (Frame, bool) {
	w.T.Helper()
	for i, f := range w.held {
		if f.Type == typ {
			w.held = append(w.held[:i], w.held[i+1:]...)
			return f, true
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-w.Frames:
			if !ok {
				w.T.Fatalf("socket closed while waiting for a frame: %v", w.closeErr())
			}
			if f.Type == typ {
				return f, true
			}
			w.held = append(w.held, f)
		case <-deadline:
			return Frame{}, false
		}
	}
}

// CloseStatus waits for the socket to end and returns the server's close status (-1 if none).
func (w *WS) CloseStatus(timeout time.Duration) websocket.StatusCode {
	w.T.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-w.Frames:
			if !ok {
				return websocket.CloseStatus(w.closeErr())
			}
		case <-deadline:
			w.T.Fatalf("socket still open after %s", timeout)
		}
	}
}

func (w *WS) closeErr() error {
	select {
	case err := <-w.Closed:
		w.Closed <- err
		return err
	default:
		return errors.New("unknown")
	}
}
