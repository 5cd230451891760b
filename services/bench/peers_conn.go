package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// peerConn is one simulated device of `natter bench peers`, on either server: natter's protocol
// or Centrifugo's. A reader goroutine counts acks (natter's ack, Centrifugo's publish reply) and
// deliveries (natter's message frame, Centrifugo's publication push) into the phase's stats; a
// sender goroutine keeps a window of sends outstanding or paces them.
//
// A send is outstanding until its message comes back to the sending connection (both servers
// deliver a message to its sender too: natter to every device of every member, Centrifugo to
// every subscriber of the channel, the publisher included) or is refused, not merely until it
// is acknowledged: a server that acknowledges faster than it delivers would otherwise let a
// flat-out sender build an unbounded queue in front of its delivery, and its latencies would
// measure that queue.
type peerConn struct {
	e    *peerEngine
	idx  int // index in e.conns, carried in every client_msg_id; catch-up senders use others
	user int
	ws   *websocket.Conn
	cf   bool // Centrifugo's protocol

	pipe           // done: closed when the reader ends
	closeErr error // why the reader ended; read after done

	// set before a phase's sender starts; the sender's own
	natterPre, natterPost []byte
	cfPub                 cfPublish
	frame                 []byte
	n                     uint64
	cmdID                 uint32

	// guarded by mu
	st      *clientStats
	pending map[uint32]msgID  // Centrifugo: publish command id -> the message it carries
	other   map[string]uint64 // frames neither path expected, by kind (disconnect pushes, say)
}

func newPeerConn(e *peerEngine, idx, user int, ws *websocket.Conn, cf bool) *peerConn {
	c := &peerConn{e: e, idx: idx, user: user, ws: ws, cf: cf, pipe: newPipe(), other: map[string]uint64{}}
	if cf {
		c.pending = map[uint32]msgID{}
		c.cmdID = 100 // the handshake used the ids below
	}
	return c
}

func (c *peerConn) read() {
	defer close(c.done)
	buf := make([]byte, 0, 4096)
	var err error
	for {
		buf, err = readFrame(context.Background(), c.ws, buf)
		if err != nil {
			c.closeErr = err
			return
		}
		if c.cf {
			cfLines(buf, c.handleCF)
		} else {
			for frame := range protocol.Frames(buf) {
				c.handleNatter(frame)
			}
		}
	}
}

func (c *peerConn) handleNatter(b []byte) {
	switch {
	case bytes.HasPrefix(b, prefixMessage):
		if id, ok := parseMsgID(field(b, keyClientMsg)); ok {
			c.delivered(id, c.e.now())
		}
	case bytes.HasPrefix(b, prefixAck):
		if id, ok := parseMsgID(field(b, keyClientMsg)); ok {
			c.acked(id, c.e.now())
		}
	case bytes.HasPrefix(b, prefixError) || !bytes.HasPrefix(b, []byte(`{"type":"`)):
		var f struct {
			Type string `json:"type"`
			Code string `json:"code"`
			Ref  string `json:"ref"`
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "error" {
			return
		}
		// An error without a ref is about a frame natter did not decode (rate_limited, say): one
		// of this connection's sends all the same, so its window token is returned.
		id, ok := parseMsgID([]byte(f.Ref))
		c.failed(id, !ok, f.Code)
	}
}

func (c *peerConn) handleCF(line []byte) {
	l := parseCFLine(line)
	switch l.Kind {
	case cfPing:
		_ = c.ws.Write(context.Background(), websocket.MessageText, cfPingFrame)
	case cfPub:
		if id, ok := parseMsgID(l.MsgID); ok {
			c.delivered(id, c.e.now())
		}
	case cfPublished, cfError:
		code := ""
		if l.Kind == cfError {
			code = "error"
			if r, err := decodeCFReply(line); err == nil && r.Error != nil {
				code = strconv.FormatUint(uint64(r.Error.Code), 10) + " " + r.Error.Message
			}
		}
		c.mu.Lock()
		id, ok := c.pending[l.ID]
		delete(c.pending, l.ID)
		c.mu.Unlock()
		if !ok {
			return
		}
		if l.Kind == cfPublished {
			c.acked(id, c.e.now())
		} else {
			c.failed(id, false, code)
		}
	default:
		kind := "unreadable"
		if r, err := decodeCFReply(line); err == nil {
			switch {
			case r.Push != nil && r.Push.Disconnect != nil:
				kind = fmt.Sprintf("disconnect %d %s", r.Push.Disconnect.Code, r.Push.Disconnect.Reason)
			case r.Push != nil:
				kind = "other push"
			default:
				kind = "other reply"
			}
		}
		c.mu.Lock()
		c.other[kind]++
		c.mu.Unlock()
	}
}

// delivered counts a message that arrived on this connection.
func (c *peerConn) delivered(id msgID, now time.Duration) {
	e := c.e
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	if st == nil || st.phase != id.phase {
		return
	}
	if id.conn == c.idx {
		c.release() // its own message came back: that send is done
	}
	st.delivered++
	if !e.measuring.Load() {
		return
	}
	st.mDelivered++
	if id.conn != c.idx {
		st.deliver.record(now - id.sent)
	}
	if id.conn < len(e.conns) && e.conns[id.conn].user != c.user {
		st.mRecipient++
	}
}

// acked counts a send the server accepted.
func (c *peerConn) acked(id msgID, now time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	if st == nil || st.phase != id.phase {
		return
	}
	st.acked++
	if c.e.measuring.Load() {
		st.mAcked++
		st.ack.record(now - id.sent)
	}
}

// failed counts a send the server refused; anonymous: the error does not say which.
func (c *peerConn) failed(id msgID, anonymous bool, code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		return
	}
	if anonymous || id.phase == c.st.phase {
		c.release()
	}
	c.st.errs[code]++
}

// prepare sets the conversation (natter) or channel (Centrifugo) the next sends go to.
func (c *peerConn) prepare(conv, text string) {
	if c.cf {
		c.cfPub = newCFPublish(conv, text)
		return
	}
	c.natterPre = fmt.Appendf(c.natterPre[:0], `{"type":"send","conversation_id":%q,"text":%q,"client_msg_id":"`, conv, text)
	c.natterPost = append(c.natterPost[:0], `"}`...)
}

func (c *peerConn) index() int    { return c.idx }
func (c *peerConn) shared() *pipe { return &c.pipe }

// send writes one message of phase; the caller holds a window token.
func (c *peerConn) send(ctx context.Context, phase uint32, st *clientStats) error {
	c.n++
	id := msgID{phase: phase, conn: c.idx, n: c.n, sent: c.e.now()}
	if c.cf {
		c.cmdID++
		c.mu.Lock()
		c.pending[c.cmdID] = id
		c.mu.Unlock()
		c.frame = c.cfPub.append(c.frame[:0], c.cmdID, id)
	} else {
		c.frame = append(c.frame[:0], c.natterPre...)
		c.frame = appendMsgID(c.frame, id)
		c.frame = append(c.frame, c.natterPost...)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, c.frame); err != nil {
		c.giveBack()
		return err
	}
	st.sent.Add(1)
	return nil
}

// sendBatch sends n messages into conv with at most window outstanding and waits (at most
// timeout) until each is acked or refused; it returns how many were acked.
func (c *peerConn) sendBatch(ctx context.Context, conv string, n, window int, timeout time.Duration) (int, error) {
	e := c.e
	phase := e.phase.Add(1)
	st := &clientStats{phase: phase, errs: map[string]uint64{}}
	win := make(chan struct{}, window)
	c.mu.Lock()
	c.st, c.window = st, win
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.st, c.window = nil, nil
		c.mu.Unlock()
	}()
	c.prepare(conv, e.text)
	deadline := time.Now().Add(timeout)
	for range n {
		select {
		case win <- struct{}{}:
		case <-c.done:
			return 0, fmt.Errorf("connection closed while sending: %w", c.closeErr)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if err := c.send(ctx, phase, st); err != nil {
			return 0, err
		}
	}
	for {
		c.mu.Lock()
		answered, acked := st.acked, st.acked
		for _, v := range st.errs {
			answered += v
		}
		c.mu.Unlock()
		if answered >= uint64(n) {
			return int(acked), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !c.alive() {
			return int(acked), fmt.Errorf("%d of %d sends unanswered after %s", uint64(n)-answered, n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cfHandshake connects a Centrifugo socket with token and subscribes it to subs (in one frame,
// one command per line), answering pings meanwhile; it returns the subscribe replies' lines in
// the order of subs. Pushes that arrive meanwhile are dropped.
func cfHandshake(ctx context.Context, ws *websocket.Conn, token, name string, subs []cfSub) ([][]byte, error) {
	frame := appendCFConnect(nil, 1, token, name)
	for i, s := range subs {
		frame = append(frame, '\n')
		frame = appendCFSubscribe(frame, uint32(2+i), s.channel, s.recover, s.epoch, s.offset)
	}
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		return nil, err
	}
	replies := make([][]byte, len(subs))
	waiting := 1 + len(subs)
	var buf []byte
	var err error
	for waiting > 0 {
		if buf, err = readFrame(ctx, ws, buf); err != nil {
			return nil, err
		}
		var ferr error
		cfLines(buf, func(line []byte) {
			l := parseCFLine(line)
			switch {
			case l.Kind == cfPing:
				ferr = ws.Write(ctx, websocket.MessageText, cfPingFrame)
			case l.Kind == cfError && l.ID >= 1 && int(l.ID) <= 1+len(subs):
				r, _ := decodeCFReply(line)
				msg := string(line)
				if r.Error != nil {
					msg = fmt.Sprintf("%d %s", r.Error.Code, r.Error.Message)
				}
				what := "connect"
				if l.ID > 1 {
					what = "subscribe to " + subs[l.ID-2].channel
				}
				ferr = fmt.Errorf("centrifugo refused %s: %s", what, msg)
			case l.Kind == cfOther && l.ID == 1:
				waiting--
			case l.Kind == cfOther && l.ID >= 2 && int(l.ID) <= 1+len(subs) && replies[l.ID-2] == nil:
				replies[l.ID-2] = append([]byte(nil), line...)
				waiting--
			case l.Kind == cfOther && l.ID == 0 && bytes.Contains(line, []byte(`"disconnect":{`)):
				ferr = fmt.Errorf("centrifugo disconnected: %s", line)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
	}
	return replies, nil
}

// cfSub is one subscription of a handshake; recover asks for what came after offset in epoch.
type cfSub struct {
	channel string
	recover bool
	epoch   string
	offset  uint64
}

// dialCF opens a WebSocket to Centrifugo (frames may be large: a recovery reply carries every
// missed publication).
func dialCF(ctx context.Context, hc *http.Client, url string) (*websocket.Conn, error) {
	c, err := dialWS(ctx, hc, url)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(256 << 20)
	return c, nil
}
