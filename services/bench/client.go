package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// clientLabels mark every goroutine of the simulated clients, so a CPU profile of an in-process
// run can be split into natter and load generator (pprof -tagignore bench=client).
var clientLabels = pprof.WithLabels(context.Background(), pprof.Labels("bench", "client"))

// goClient runs f on a goroutine labelled as bench client.
func goClient(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		pprof.SetGoroutineLabels(clientLabels)
		f()
	}()
}

// The frames a client must recognise, as natter's encoder writes them (encoding/json keeps struct
// field order, and "type" is every frame's first field). Anything else is decoded properly.
var (
	prefixMessage = []byte(`{"type":"message"`)
	prefixAck     = []byte(`{"type":"ack"`)
	prefixError   = []byte(`{"type":"error"`)
	prefixSynced  = []byte(`{"type":"synced"`)
	keyClientMsg  = []byte(`"client_msg_id":"`)
)

// msgID is what a bench client_msg_id carries: the phase, the sending connection, a per-connection
// counter (for uniqueness) and the send time since the run's epoch. Written as
// B<phase>-<conn>-<n>-<sent ns>, all hexadecimal: a valid client_msg_id of at most ~40 bytes.
type msgID struct {
	phase uint32
	conn  int
	n     uint64
	sent  time.Duration
}

func appendMsgID(b []byte, id msgID) []byte {
	b = append(b, 'B')
	b = strconv.AppendUint(b, uint64(id.phase), 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(id.conn), 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, id.n, 16)
	b = append(b, '-')
	return strconv.AppendUint(b, uint64(id.sent), 16)
}

func parseMsgID(b []byte) (msgID, bool) {
	if len(b) < 8 || b[0] != 'B' {
		return msgID{}, false
	}
	var f [4]uint64
	b = b[1:]
	for i := range f {
		j := bytes.IndexByte(b, '-')
		if i == 3 {
			j = len(b)
		}
		if j <= 0 {
			return msgID{}, false
		}
		v, ok := parseHex(b[:j])
		if !ok {
			return msgID{}, false
		}
		f[i] = v
		if j < len(b) {
			b = b[j+1:]
		}
	}
	return msgID{phase: uint32(f[0]), conn: int(f[1]), n: f[2], sent: time.Duration(f[3])}, true
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// field returns the string value after key (which ends with the opening quote), or nil.
func field(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// wsHTTPClient dials the WebSockets of the load: loopback only, no proxy, and with linger 0 so
// that thousands of closed client sockets do not sit in TIME_WAIT and exhaust the ports of the
// next run.
func wsHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			return c, nil
		},
		MaxIdleConns:      -1,
		DisableKeepAlives: true,
	}}
}

func dialWS(ctx context.Context, hc *http.Client, url string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: status %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	c.SetReadLimit(protocol.HardFrameBytes)
	return c, nil
}

// readFrame reads the next message of c into buf[:0], reusing its memory.
func readFrame(ctx context.Context, c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.Reader(ctx)
	if err != nil {
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// clientStats are one connection's counts in one phase. The connection's reader goroutine writes
// them under client.mu; sent is the sender's own.
type clientStats struct {
	phase uint32
	sent  atomic.Uint64
	late  atomic.Uint64 // paced sends skipped because the window was full

	acked     uint64 // acks of this phase, whenever they came
	delivered uint64 // message frames of this phase, whenever they came
	errs      map[string]uint64

	// within the measured window
	mAcked     uint64
	mDelivered uint64
	mRecipient uint64 // message frames on device 0 of a user other than the sender
	ack        hist
	deliver    hist
}

// client is one simulated device: a socket, a reader goroutine that counts what arrives and,
// when it is a sender in a phase, a sender goroutine.
type client struct {
	e      *engine
	idx    int
	user   int
	device int
	ws     *websocket.Conn

	synced     chan struct{}
	syncedOnce sync.Once
	pipe             // done: closed when the reader ends
	closeErr   error // why the reader ended; read after done

	// set before a phase's sender starts
	pre, post []byte // the send frame around its client_msg_id
	frame     []byte
	n         uint64

	st *clientStats // guarded by mu
}

func (c *client) read() {
	defer close(c.done)
	buf := make([]byte, 0, 1024)
	var err error
	for {
		buf, err = readFrame(context.Background(), c.ws, buf)
		if err != nil {
			c.closeErr = err
			return
		}
		c.handle(buf)
	}
}

func (c *client) handle(b []byte) {
	e := c.e
	switch {
	case bytes.HasPrefix(b, prefixMessage):
		id, ok := parseMsgID(field(b, keyClientMsg))
		if !ok || id.conn >= len(e.clients) {
			return
		}
		now := e.now()
		from := e.clients[id.conn]
		c.mu.Lock()
		if st := c.st; st != nil && st.phase == id.phase {
			st.delivered++
			if e.measuring.Load() {
				st.mDelivered++
				if from != c {
					st.deliver.record(now - id.sent)
					e.tick(now, false, now-id.sent)
				}
				if from.user != c.user && c.device == 0 {
					st.mRecipient++
				}
			}
		}
		c.mu.Unlock()
	case bytes.HasPrefix(b, prefixAck):
		id, ok := parseMsgID(field(b, keyClientMsg))
		if !ok {
			return
		}
		now := e.now()
		c.mu.Lock()
		if st := c.st; st != nil && st.phase == id.phase {
			c.release()
			st.acked++
			if e.measuring.Load() {
				st.mAcked++
				st.ack.record(now - id.sent)
				e.tick(now, true, now-id.sent)
			}
		}
		c.mu.Unlock()
	case bytes.HasPrefix(b, prefixSynced):
		c.syncedOnce.Do(func() { close(c.synced) })
	case bytes.HasPrefix(b, prefixError) || !bytes.HasPrefix(b, []byte(`{"type":"`)):
		var f struct {
			Type string `json:"type"`
			Code string `json:"code"`
			Ref  string `json:"ref"`
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "error" {
			return
		}
		c.mu.Lock()
		if c.st != nil {
			if id, ok := parseMsgID([]byte(f.Ref)); ok && id.phase == c.st.phase {
				c.release()
			}
			c.st.errs[f.Code]++
		}
		c.mu.Unlock()
	}
}

// prepare sets the conversation the client sends to in the next phase.
func (c *client) prepare(conv, text string) {
	c.pre = fmt.Appendf(c.pre[:0], `{"type":"send","conversation_id":%q,"text":%q,"client_msg_id":"`, conv, text)
	c.post = append(c.post[:0], `"}`...)
}

func (c *client) index() int    { return c.idx }
func (c *client) shared() *pipe { return &c.pipe }

// send writes one send frame of phase; the caller holds a window token.
func (c *client) send(ctx context.Context, phase uint32, st *clientStats) error {
	c.n++
	c.frame = append(c.frame[:0], c.pre...)
	c.frame = appendMsgID(c.frame, msgID{phase: phase, conn: c.idx, n: c.n, sent: c.e.now()})
	c.frame = append(c.frame, c.post...)
	if err := c.ws.Write(ctx, websocket.MessageText, c.frame); err != nil {
		c.giveBack()
		return err
	}
	st.sent.Add(1)
	return nil
}
