package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

var errStopped = errors.New("stopped")

// catchUpBatch is how many catch-up frames go to the socket in one write.
const catchUpBatch = 64

// mergeBatch is how many events a conversation hands the catch-up's merge at a time: enough to
// make the goroutine switch of each hand-over cheap, few enough that a user with hundreds of
// conversations does not hold many megabytes of them at once.
const mergeBatch = 64

// catchUp brings one device up to date: every event of its user's conversations after the
// device's cursor, in one global seq order, each conversation limited to the user's membership
// intervals and thinned by consent, then a Synced frame with the head it caught up to, then the
// live events its gate held back meanwhile (those after the head; earlier ones were part of the
// catch-up). It needs no session: the session builds one per socket (session.catchUp).
//
// Because the order is global, a client's cursor is simply the seq of the last event it
// received, even if the connection drops in the middle of a catch-up.
type catchUp struct {
	user     string
	timeline *timeline.Reader
	members  membershipReader
	consent  consentView
	// settle waits until the membership changes up to head are applied to the store, so that
	// the memberships read next include them (Gateway.awaitMembership); nil: no wait.
	settle func(ctx context.Context, head uint64)
	gate   *lockedGate
	sink   frameSink
}

// membershipReader lists a user's memberships, current and former (store.Store).
type membershipReader interface {
	MembershipsOf(ctx context.Context, userID string) ([]store.Member, error)
}

// consentView decides whether a viewer sees a sender's message in a conversation
// (consent.Table.SeesMessage): held direct requests and blocks are not replayed.
type consentView interface {
	SeesMessage(viewer, sender, conversationID string) bool
}

// frameSink takes catch-up's frames in order from the goroutine that runs it. write holds a
// frame back for the current batch, copying it (the caller reuses its buffer); flush ends the
// batch, putting it on the wire in one write where it can and waiting for it, which paces the
// catch-up to the client; close flushes and releases what the sink kept for the catch-up. write
// and flush return errSessionEnded once the socket is gone.
type frameSink interface {
	write(frame []byte) error
	flush() error
	close()
}

// lockedGate is a liveGate shared with the goroutines that offer it live events: every call
// holds mu (the session's).
type lockedGate struct {
	mu   *sync.Mutex
	gate *liveGate
}

func (g lockedGate) setHead(head uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate.setHead(head)
}

func (g lockedGate) caughtUp(conv string, seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate.caughtUp(conv, seq)
}

func (g lockedGate) takeHeld() []pendingFrame {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gate.takeHeld()
}

func (g lockedGate) admit(p pendingFrame) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gate.admit(p)
}

// run catches the device up from cursor and opens the gate. Without a cursor it only
// establishes the head: the device gets what comes after it. It returns the cursor the device
// is synced to (the head), also for a client that claimed a cursor beyond it (say the stream
// was rebuilt): what follows the head reaches it live.
func (c *catchUp) run(ctx context.Context, cursor *uint64) (uint64, error) {
	defer c.sink.close()
	marks, err := c.timeline.Marks(ctx)
	if err != nil {
		return 0, fmt.Errorf("catch-up marks: %w", err)
	}
	from := marks.Head
	if cursor != nil {
		from = *cursor
	}
	c.gate.setHead(marks.Head)
	out := batcher{sink: c.sink}
	if from < marks.Head {
		if c.settle != nil {
			c.settle(ctx, marks.Head)
		}
		if err := c.replay(ctx, marks, from, &out); err != nil {
			return 0, err
		}
	}
	synced, err := json.Marshal(protocol.Synced{Type: protocol.TypeSynced, Cursor: marks.Head})
	if err != nil {
		return 0, fmt.Errorf("catch-up synced: %w", err)
	}
	// Synced is on the socket before anything released below.
	if err := out.write(synced); err != nil {
		return 0, err
	}
	if err := out.flush(); err != nil {
		return 0, err
	}
	// Release what was held back, batched like the catch-up (the queue is smaller than what
	// may be held); what arrives meanwhile joins the held frames, so order is kept. The gate
	// opens when nothing is held any more.
	for {
		held := c.gate.takeHeld()
		if len(held) == 0 {
			return marks.Head, out.flush()
		}
		for _, p := range held {
			if c.gate.admit(p) {
				if err := out.write(p.frame); err != nil {
					return 0, err
				}
			}
		}
	}
}

// replay merges the timelines of every conversation the user is or was in, each limited to what
// the membership lets them see, into one seq-ordered stream of frames.
func (c *catchUp) replay(ctx context.Context, marks timeline.Marks, from uint64, out *batcher) error {
	memberships, err := c.members.MembershipsOf(ctx, c.user)
	if err != nil {
		return fmt.Errorf("catch-up memberships: %w", err)
	}
	var merge seqMerge
	defer merge.stop()
	var rangeErr error
	for _, m := range memberships {
		// From the first event after from that one of the member's intervals holds, to the end
		// of the last interval; events in the gaps between intervals are skipped.
		first, ok := m.SeenSince(from)
		if !ok {
			continue
		}
		lo, hi := first-1, marks.Head
		if m.LeftSeq != 0 {
			hi = min(hi, m.LeftSeq)
		}
		if lo >= hi {
			continue
		}
		merge.add(func(yield func([]store.Message) bool) {
			var batch []store.Message // reused: the merge copies what it returns
			err := c.timeline.Range(ctx, marks, m.ConversationID, lo, hi, func(msg store.Message) error {
				if !timeline.Sees(m, msg) { // a revision of a message before the member's time, another's hide
					return nil
				}
				if msg.Kind != streams.KindMember && !c.consent.SeesMessage(c.user, msg.SenderID, msg.ConversationID) {
					return nil // held or blocked: not for this user
				}
				if batch = append(batch, msg); len(batch) < mergeBatch {
					return nil
				}
				if !yield(batch) {
					return errStopped
				}
				batch = batch[:0]
				return nil
			})
			switch {
			case err == nil && len(batch) > 0:
				yield(batch)
			case err != nil && !errors.Is(err, errStopped):
				rangeErr = err // what was read before the error is not yielded: the catch-up fails
			}
		})
		if rangeErr != nil {
			return fmt.Errorf("catch-up %s: %w", m.ConversationID, rangeErr)
		}
	}
	var frame []byte // reused: the sink copies each frame it is given
	for msg, ok := merge.next(); ok; msg, ok = merge.next() {
		c.gate.caughtUp(msg.ConversationID, msg.Seq)
		if view, ok := timeline.View(msg, c.user); ok { // another user's hide is theirs alone
			ev := timeline.Event(view)
			if frame, err = ev.AppendJSON(frame[:0]); err != nil {
				return fmt.Errorf("catch-up encode: %w", err)
			}
			if err := out.write(frame); err != nil {
				return err
			}
		}
		if rangeErr != nil {
			return fmt.Errorf("catch-up: %w", rangeErr)
		}
	}
	return nil
}

// batcher ends a batch of its sink every catchUpBatch frames.
type batcher struct {
	sink frameSink
	n    int // frames in the current batch
}

func (b *batcher) write(frame []byte) error {
	if err := b.sink.write(frame); err != nil {
		return err
	}
	if b.n++; b.n < catchUpBatch {
		return nil
	}
	return b.flush()
}

// flush ends the current batch.
func (b *batcher) flush() error {
	if b.n == 0 {
		return nil
	}
	b.n = 0
	return b.sink.flush()
}

// catchUp runs the session's catch-up (see catchUp). It writes to the socket itself, so that it
// paces itself to the client and leaves the bounded queue to live frames and answers.
func (s *session) catchUp(cursor *uint64) error {
	c := catchUp{
		user:     s.userID,
		timeline: s.g.deps.Timeline,
		members:  s.g.deps.Store,
		consent:  s.g.consent,
		settle:   s.g.awaitMembership,
		gate:     &lockedGate{mu: &s.mu, gate: &s.live},
		sink:     &pacedWriter{s: s},
	}
	_, err := c.run(s.ctx, cursor)
	return err
}

// pacedWriter is a session's frameSink: each batch is one write of the corked socket. Until
// flush the socket stays corked.
type pacedWriter struct {
	s      *session
	corked bool // a batch is open: the socket is corked
}

func (w *pacedWriter) write(frame []byte) error {
	select {
	case <-w.s.kill:
		return errSessionEnded
	default:
	}
	if !w.corked {
		w.corked = true
		w.s.cork.cork()
	}
	// Held back in memory (copied: the caller reuses frame): the flush's write has the timeout.
	if err := w.s.write(frame); err != nil {
		_ = w.flush()
		return errSessionEnded
	}
	return nil
}

// flush puts what was held back on the wire, unless the session writer still holds the socket
// corked: then its own uncork does, right after.
func (w *pacedWriter) flush() error {
	if !w.corked {
		return nil
	}
	w.corked = false
	if err := w.s.cork.uncork(w.s.g.cfg.WriteTimeout); err != nil {
		w.s.writeFailed()
		return errSessionEnded
	}
	return nil
}

// close flushes what is held back.
func (w *pacedWriter) close() { _ = w.flush() }
