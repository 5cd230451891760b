package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

var errStopped = errors.New("stopped")

// catchUp sends the device every event of its conversations after cursor, in one global seq
// order, then a Synced frame with the head it caught up to, then releases the live events held
// back meanwhile (those after the head; earlier ones were part of the catch-up). Without a cursor
// it only establishes the head: the device gets what comes after it.
//
// Because the order is global, a client's cursor is simply the seq of the last event it received,
// even if the connection drops in the middle of a catch-up.
func (s *session) catchUp(cursor *uint64) error {
	tl := s.g.deps.Timeline
	marks, err := tl.Marks(s.ctx)
	if err != nil {
		return fmt.Errorf("catch-up marks: %w", err)
	}
	from := marks.Head
	if cursor != nil {
		from = *cursor
	}
	s.mu.Lock()
	s.live.setHead(marks.Head)
	s.mu.Unlock()
	if from < marks.Head {
		s.g.awaitMembership(s.ctx, marks.Head)
		if err := s.replay(tl, marks, from); err != nil {
			return err
		}
	}
	// The head is the cursor, also for a client that claimed a cursor beyond it (say the stream
	// was rebuilt): what follows the head reaches it live.
	synced, err := json.Marshal(protocol.Synced{Type: protocol.TypeSynced, Cursor: marks.Head})
	if err != nil {
		return err
	}
	// Written here, like the catch-up: it is on the socket before anything released below.
	if err := s.writeNow(synced); err != nil {
		return err
	}
	// Release what was held back, paced like the catch-up (the queue is smaller than what may
	// be held); what arrives meanwhile joins the held frames, so order is kept.
	w := pacedWriter{s: s}
	defer w.close()
	for {
		s.mu.Lock()
		held := s.live.takeHeld()
		s.mu.Unlock()
		if len(held) == 0 {
			return w.flush()
		}
		for _, p := range held {
			s.mu.Lock()
			fresh := s.live.admit(p)
			s.mu.Unlock()
			if fresh {
				if err := w.write(p.frame); err != nil {
					return err
				}
			}
		}
	}
}

// pacedBatch is how many catch-up frames go to the socket in one write.
const pacedBatch = 64

// pacedWriter writes catch-up frames from the goroutine that calls it, pacedBatch to a write
// of the corked socket: one syscall per batch, and waiting for each batch's write paces the
// catch-up to the client, leaving the bounded queue to live frames and answers. Whoever writes
// with it flushes it when done, also on an error: until then the socket stays corked.
type pacedWriter struct {
	s     *session
	n     int  // frames held back since the last flush
	burst bool // the socket keeps its held buffer between batches until close
}

func (w *pacedWriter) write(frame []byte) error {
	select {
	case <-w.s.kill:
		return errSessionEnded
	default:
	}
	if !w.burst {
		w.burst = true
		w.s.cork.keepHeld(true)
	}
	if w.n == 0 {
		w.s.cork.cork()
	}
	w.n++
	// Held back in memory: the flush's write has the timeout.
	if err := w.s.write(context.Background(), frame); err != nil {
		_ = w.flush()
		return errSessionEnded
	}
	if w.n < pacedBatch {
		return nil
	}
	return w.flush()
}

// flush puts what was held back on the wire, unless the session writer still holds the socket
// corked: then its own uncork does, right after.
func (w *pacedWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	w.n = 0
	if err := w.s.cork.uncork(w.s.g.cfg.WriteTimeout); err != nil {
		w.s.writeFailed()
		return errSessionEnded
	}
	return nil
}

// close flushes what is held back and lets the socket's held buffer go.
func (w *pacedWriter) close() {
	_ = w.flush()
	if w.burst {
		w.burst = false
		w.s.cork.keepHeld(false)
	}
}

// replay merges the timelines of every conversation the user is or was in, each limited to what
// the membership lets them see, into one seq-ordered stream of frames.
func (s *session) replay(tl *timeline.Reader, marks timeline.Marks, from uint64) error {
	memberships, err := s.g.deps.Store.MembershipsOf(s.ctx, s.userID)
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
		merge.add(func(yield func(store.Message) bool) {
			err := tl.Range(s.ctx, marks, m.ConversationID, lo, hi, func(msg store.Message) error {
				if !timeline.Sees(m, msg) { // a revision of a message before the member's time, another's hide
					return nil
				}
				if msg.Kind != streams.KindMember && !s.g.consent.SeesMessage(s.userID, msg.SenderID, msg.ConversationID) {
					return nil // held or blocked: not for this user (consent.Table.SeesMessage)
				}
				if !yield(msg) {
					return errStopped
				}
				return nil
			})
			if err != nil && !errors.Is(err, errStopped) {
				rangeErr = err
			}
		})
		if rangeErr != nil {
			return fmt.Errorf("catch-up %s: %w", m.ConversationID, rangeErr)
		}
	}
	w := pacedWriter{s: s}
	defer w.close()
	var frame []byte // reused: the socket copies each frame it is given
	for msg, ok := merge.next(); ok; msg, ok = merge.next() {
		s.mu.Lock()
		s.live.caughtUp(msg.ConversationID, msg.Seq)
		s.mu.Unlock()
		if view, ok := timeline.View(msg, s.userID); ok { // another user's hide is theirs alone
			ev := timeline.Event(view)
			if frame, err = ev.AppendJSON(frame[:0]); err != nil {
				return fmt.Errorf("catch-up encode: %w", err)
			}
			if err := w.write(frame); err != nil {
				return err
			}
		}
		if rangeErr != nil {
			return fmt.Errorf("catch-up: %w", rangeErr)
		}
	}
	return w.flush()
}
