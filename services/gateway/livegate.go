package gateway

// maxPending bounds the live frames held back while a session catches up.
const maxPending = 10_000

// liveGate decides which live events go to one socket, and when. While the socket catches up,
// live events wait (at most maxPending); once it has, an event is sent unless the socket
// already has it: at or below the head its catch-up read up to, or at or below the last seq of
// its conversation the socket got (a redelivery, or an event the catch-up sent). Its owner
// serialises every call (the session's mu).
type liveGate struct {
	syncing bool
	pending []pendingFrame
	head    uint64            // the head the catch-up reads up to (0 until known)
	lastSeq map[string]uint64 // conversation -> highest seq sent to the socket (allocated on first use)
}

type pendingFrame struct {
	conv  string
	seq   uint64
	frame []byte
}

// newLiveGate returns a gate that holds live events until its catch-up is released.
func newLiveGate() liveGate { return liveGate{syncing: true} }

// offer is a live event. It returns send when the frame is to be queued now (recorded as
// sent), and full when the catch-up held too many: the socket must resync.
func (g *liveGate) offer(conv string, seq uint64, frame []byte) (send, full bool) {
	if g.syncing {
		if len(g.pending) >= maxPending {
			return false, true
		}
		g.pending = append(g.pending, pendingFrame{conv, seq, frame})
		return false, false
	}
	if !g.fresh(conv, seq) {
		return false, false
	}
	g.sent(conv, seq)
	return true, false
}

// setHead records the head the catch-up reads up to: nothing at or below it is sent live.
func (g *liveGate) setHead(head uint64) { g.head = head }

// caughtUp records that the catch-up sent seq of conv.
func (g *liveGate) caughtUp(conv string, seq uint64) { g.sent(conv, max(g.lastSeq[conv], seq)) }

// takeHeld hands over the frames held back so far; when there are none it opens the gate (live
// events are sent from then on) and returns nil. Pass each taken frame to admit before
// sending it.
func (g *liveGate) takeHeld() []pendingFrame {
	held := g.pending
	g.pending = nil
	if len(held) == 0 {
		g.syncing = false
	}
	return held
}

// admit reports whether a held frame is still to be sent, and records it as sent if so.
func (g *liveGate) admit(p pendingFrame) bool {
	if !g.fresh(p.conv, p.seq) {
		return false
	}
	g.sent(p.conv, p.seq)
	return true
}

// caughtUpTo reports whether the socket is, or will be when its catch-up ends, past seq: every
// event at or below it was or will be sent by the catch-up, and none comes live.
func (g *liveGate) caughtUpTo(seq uint64) bool { return g.head != 0 && g.head >= seq }

func (g *liveGate) fresh(conv string, seq uint64) bool {
	return seq > g.head && seq > g.lastSeq[conv]
}

func (g *liveGate) sent(conv string, seq uint64) {
	if g.lastSeq == nil {
		g.lastSeq = map[string]uint64{}
	}
	g.lastSeq[conv] = seq
}
