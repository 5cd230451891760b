package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// corkConn is a socket that can hold back what is written to it: the session's text frames
// (writeText) and the websocket.Conn's own control frames alike collect here while it is corked,
// so a batch of frames reaches the wire in one write. Both the session writer and catch-up cork
// it; it stays corked until the last of them uncorks. Uncorked, writes pass through. Bytes leave
// in the order they were written, corked or not.
type corkConn struct {
	net.Conn
	mu    sync.Mutex // held across the underlying write, so held-back bytes never interleave
	corks int        // corks not yet uncorked
	// framesClosed: the session is closing; writeText refuses (nothing may follow a close frame).
	framesClosed bool
	// held collects what is written while corked, in a buffer lent by heldBuffers from the first
	// such write until the uncork that sends it (nil: nothing held).
	held *[]byte
	// writes counts the writes to the socket (nil: not counted).
	writes prometheus.Counter
	// lines: the client asked for frames=lines, so the text frames written while corked go out
	// several to a WebSocket message, one per line, up to maxLinesBytes. joined is the message
	// being filled, in a buffer lent by joinedBuffers (nil: none, as always while uncorked: the
	// last uncork closes it); it is closed, and held, before anything else is held or written.
	lines  bool
	joined *[]byte
	// The write deadline stays armed between writes and is moved, to twice timeout from now,
	// only when less than timeout is left: setting it around every write cost two timer updates
	// per write, a few percent of the gateway's CPU per delivery. Every write thus has between
	// timeout and twice timeout to finish. Zero timeout (before the first uncork): no deadline.
	timeout  time.Duration
	deadline time.Time
}

// heldBuffers lends corked sockets the buffer their held-back writes collect in. A socket keeps
// one only while it holds bytes, so an idle socket keeps none, and the next batch, on this socket
// or another, reuses a buffer already grown to batches' size: growing a fresh buffer for every
// batch was 6 % of the gateway's CPU in a group of 100, and a fifth of a catch-up's. One grown
// past 1 MiB (a batch of very large frames) is left to the garbage collector.
var heldBuffers = newBuffers(4<<10, 1<<20)

// maxLinesBytes bounds a message of several frames (frames=lines); a larger frame goes alone.
const maxLinesBytes = 64 << 10

// joinedBuffers lends corked sockets of frames=lines the message they join frames in.
var joinedBuffers = newBuffers(4<<10, 2*maxLinesBytes)

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corks > 0 {
		if len(p) > 0 {
			c.endJoined()
			b := c.heldBuf()
			*b = append(*b, p...)
		}
		return len(p), nil
	}
	if err := c.armDeadline(); err != nil {
		return 0, err
	}
	c.count()
	return c.Conn.Write(p)
}

func (c *corkConn) count() {
	if c.writes != nil {
		c.writes.Inc()
	}
}

// armDeadline moves the write deadline to twice timeout from now when less than timeout is
// left. Called with mu held.
func (c *corkConn) armDeadline() error {
	if c.timeout <= 0 {
		return nil
	}
	now := time.Now()
	if c.deadline.Sub(now) >= c.timeout {
		return nil
	}
	c.deadline = now.Add(2 * c.timeout)
	return c.Conn.SetWriteDeadline(c.deadline)
}

// writeText writes p as one WebSocket text frame, past the websocket.Conn, whose two locks and
// buffer copy per frame were 3-4 % of the gateway's CPU in a group of 100; corked, the frame is
// held back like any write, and uncorked it goes out at once. It is safe beside the Conn's own writes (pongs, pings, the close
// frame): the Conn flushes each of its frames as it completes it, and a control frame (at most 131
// bytes) fits its 1 KiB buffer, so each reaches Write in one piece, and frames never interleave.
// After closeFrames it refuses with net.ErrClosed.
func (c *corkConn) writeText(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.framesClosed {
		return net.ErrClosed
	}
	if c.lines && c.corks > 0 {
		c.join(p)
		return nil
	}
	b := c.heldBuf()
	*b = appendTextFrame(*b, p)
	if c.corks > 0 {
		return nil
	}
	return c.flushHeld()
}

// closeFrames makes writeText refuse from now on: the close frame is next.
func (c *corkConn) closeFrames() {
	c.mu.Lock()
	c.framesClosed = true
	c.mu.Unlock()
}

// appendTextFrame appends p as one final, unmasked text frame as a server sends it (RFC 6455
// section 5.2): no extension bits, the shortest encoding of the length.
func appendTextFrame(dst, p []byte) []byte {
	const finText = 0x81
	switch n := len(p); {
	case n <= 125:
		dst = append(dst, finText, byte(n))
	case n <= 0xffff:
		dst = append(dst, finText, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, finText, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, p...)
}

// cork holds back writes until every cork is uncorked.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corks++
	c.mu.Unlock()
}

// uncork takes one cork out. The last one out writes what was held back in one write bounded
// by timeout, and lets writes pass through again, from then on each bounded too (see
// corkConn.timeout).
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corks--; c.corks > 0 || (c.held == nil && c.joined == nil) {
		return nil
	}
	c.timeout = timeout
	return c.flushHeld()
}

// heldBuf is the socket's held buffer, borrowed from heldBuffers if it holds none. Called with
// mu held.
func (c *corkConn) heldBuf() *[]byte {
	if c.held == nil {
		c.held = heldBuffers.get()
	}
	return c.held
}

// flushHeld writes what is held in one write, bounded by the write deadline, and gives the
// buffer back to heldBuffers. Called with mu held.
func (c *corkConn) flushHeld() error {
	c.endJoined()
	held := c.held
	c.held = nil
	defer heldBuffers.put(held)
	if err := c.armDeadline(); err != nil {
		return err
	}
	c.count()
	_, err := c.Conn.Write(*held)
	return err
}

// join adds p to the message being joined, as its next line; a message that would grow past
// maxLinesBytes is closed first. Called with mu held, corked.
func (c *corkConn) join(p []byte) {
	if c.joined != nil && len(*c.joined)+1+len(p) > maxLinesBytes {
		c.endJoined()
	}
	if c.joined == nil {
		c.joined = joinedBuffers.get()
	} else {
		*c.joined = append(*c.joined, '\n')
	}
	*c.joined = append(*c.joined, p...)
}

// endJoined holds the message being joined as one text frame, and gives its buffer back.
// Called with mu held.
func (c *corkConn) endJoined() {
	if c.joined == nil {
		return
	}
	b := c.heldBuf()
	*b = appendTextFrame(*b, *c.joined)
	joinedBuffers.put(c.joined)
	c.joined = nil
}

// heldBytes is what is held back now (for tests).
func (c *corkConn) heldBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		return nil
	}
	return *c.held
}

// socketBuffer sizes the read and the write buffer of each socket. Client frames and most server
// frames are a few hundred bytes; a larger frame is read or written past the buffer. net/http's
// own buffers are 4 KiB each, which made up 7 of the 18.5 KiB an idle connection keeps live.
const socketBuffer = 1 << 10

// corkingWriter hands websocket.Accept a corkConn when it hijacks the connection: both the conn
// and the buffered writer Accept builds the websocket.Conn on write through it.
type corkingWriter struct {
	http.ResponseWriter
	writes prometheus.Counter // given to the corkConn
	lines  bool               // given to the corkConn
	conn   *corkConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("gateway: the response writer cannot be hijacked")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: c, writes: w.writes, lines: w.lines}
	// net/http flushed the upgrade response already, so its writer holds nothing. Its reader may
	// hold bytes the client sent right after the upgrade request: then it is kept.
	br := brw.Reader
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(c, socketBuffer)
	}
	return w.conn, bufio.NewReadWriter(br, bufio.NewWriterSize(w.conn, socketBuffer)), nil
}
