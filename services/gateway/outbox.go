package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// outbox is one socket's send queue: live events and the session's own answers wait here, in
// order, for the socket's writer. It never blocks a producer. At most one writer drains it, and
// one runs only while there is something to do (an idle socket keeps no goroutine): push and
// close report when the caller must start one, and count it in the session's WaitGroup first,
// under the outbox's lock, so that nothing starts unseen once the session has ended.
type outbox struct {
	limits *outboxLimits   // the gateway's, shared by its sockets
	wg     *sync.WaitGroup // the session's: a writer is counted before it starts

	mu       sync.Mutex
	queue    [][]byte // frames not yet taken by the writer
	spare    [][]byte // the writer's last batch, whose memory the next batch reuses
	draining bool     // a writer runs (or is starting)
	closed   bool     // the session ended: nothing more is queued; the writer closes the socket
	broken   bool     // a write failed: the socket closes without the handshake
	lastDone time.Time

	wireSince atomic.Int64 // when the writer's current write to the socket began (Unix ns); 0 outside one
}

// outboxLimits bound the queue (see push) and space the writes (see take).
type outboxLimits struct {
	soft, hard int           // Config.SendQueue and HardSendQueue
	slowAfter  time.Duration // Config.SlowClientAfter
	interval   time.Duration // Config.WriteInterval
}

// idleQueueCap is the largest queue an idle socket keeps allocated.
const idleQueueCap = 16

// push queues frame. start: the caller must run a writer (it is counted in wg). full: the
// queue is past its bounds and frame was not queued; the caller closes the session as slow.
// Past the soft bound a socket counts as slow only if its own client is — the writer has been
// in one write for slowAfter, the client does not read — or at the hard bound: a queue that grew
// because the server's writers fell behind while the client reads is not the client's fault.
// After close, frames are dropped.
func (o *outbox) push(frame []byte) (start, full bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false, false
	}
	if n := len(o.queue); n >= o.limits.soft && (n >= o.limits.hard || o.stuck() >= o.limits.slowAfter) {
		return false, true
	}
	o.queue = append(o.queue, frame)
	return o.startLocked(), false
}

// close ends the outbox: what is queued is dropped and the writer closes the socket. start:
// the caller must run a writer for that (it is counted in wg).
func (o *outbox) close() (start bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.closed = true
	return o.startLocked()
}

// breakOff records that a write failed: the socket closes without the handshake.
func (o *outbox) breakOff() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.broken = true
}

func (o *outbox) startLocked() bool {
	if o.draining {
		return false
	}
	o.draining = true
	o.wg.Add(1)
	return true
}

// turn is the writer's next step, from take.
type turn struct {
	frames [][]byte      // write these, in order, then call done
	wait   time.Duration // write nothing yet: pause this long, then take again with patient false
	close  bool          // the session ended: close the socket (without the handshake if broken) and exit
	broken bool
	idle   bool // nothing is queued: exit (the next push starts a writer)
}

// take is called by the writer for its next step. A patient writer whose last write ended less
// than the write interval ago is told to wait out the rest, so that what comes meanwhile goes
// in the same write; after the wait it takes whatever is there.
func (o *outbox) take(patient bool, now time.Time) turn {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.closed:
		o.queue, o.spare = nil, nil
		return turn{close: true, broken: o.broken}
	case len(o.queue) == 0:
		o.draining = false
		if cap(o.queue) > idleQueueCap {
			o.queue = nil // an idle socket keeps no large buffer
		}
		o.spare = nil
		return turn{idle: true}
	}
	if wait := o.limits.interval - now.Sub(o.lastDone); patient && wait > 0 {
		return turn{wait: wait}
	}
	batch := o.queue
	o.queue, o.spare = o.spare, nil
	o.wireSince.Store(now.UnixNano())
	return turn{frames: batch}
}

// done hands back the frames of the last turn once they are on the wire (or failed to get
// there): their memory holds the next batch.
func (o *outbox) done(batch [][]byte, now time.Time) {
	clear(batch) // the frames are shared with other sockets: hold none of them
	o.wireSince.Store(0)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastDone = now
	if o.queue == nil { // nothing came meanwhile: the next frames go into this batch's memory
		o.queue = batch[:0]
	} else {
		o.spare = batch[:0]
	}
}

// stuck is how long the writer has been in its current write to the socket (0 if in none).
func (o *outbox) stuck() time.Duration {
	since := o.wireSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}
