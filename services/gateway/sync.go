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
	sink   batchSink
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

// batchSink puts a batch of frames on the socket, in order and in one write where it can,
// pacing the caller to the client. It does not keep frames after it returns, and returns
// errSessionEnded once the socket is gone.
type batchSink interface {
	writeBatch(frames [][]byte) error
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
	if err := out.add(synced); err != nil {
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
				if err := out.add(p.frame); err != nil {
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
		merge.add(func(yield func(store.Message) bool) {
			err := c.timeline.Range(ctx, marks, m.ConversationID, lo, hi, func(msg store.Message) error {
				if !timeline.Sees(m, msg) { // a revision of a message before the member's time, another's hide
					return nil
				}
				if msg.Kind != streams.KindMember && !c.consent.SeesMessage(c.user, msg.SenderID, msg.ConversationID) {
					return nil // held or blocked: not for this user
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
	for msg, ok := merge.next(); ok; msg, ok = merge.next() {
		c.gate.caughtUp(msg.ConversationID, msg.Seq)
		if view, ok := timeline.View(msg, c.user); ok { // another user's hide is theirs alone
			frame, err := json.Marshal(timeline.Event(view))
			if err != nil {
				return fmt.Errorf("catch-up encode: %w", err)
			}
			if err := out.add(frame); err != nil {
				return err
			}
		}
		if rangeErr != nil {
			return fmt.Errorf("catch-up: %w", rangeErr)
		}
	}
	return nil
}

// batcher gathers frames for a batchSink, catchUpBatch to a batch.
type batcher struct {
	sink   batchSink
	frames [][]byte
}

func (b *batcher) add(frame []byte) error {
	b.frames = append(b.frames, frame)
	if len(b.frames) < catchUpBatch {
		return nil
	}
	return b.flush()
}

// flush hands what was gathered to the sink.
func (b *batcher) flush() error {
	if len(b.frames) == 0 {
		return nil
	}
	err := b.sink.writeBatch(b.frames)
	clear(b.frames)
	b.frames = b.frames[:0]
	return err
}

// catchUp runs the session's catch-up (see catchUp): it writes to the socket itself, batched
// on the corked socket, so that it paces itself to the client and leaves the bounded queue to
// live frames and answers.
func (s *session) catchUp(cursor *uint64) error {
	c := catchUp{
		user:     s.userID,
		timeline: s.g.deps.Timeline,
		members:  s.g.deps.Store,
		consent:  s.g.consent,
		settle:   s.g.awaitMembership,
		gate:     &lockedGate{mu: &s.mu, gate: &s.live},
		sink:     socketSink{s},
	}
	_, err := c.run(s.ctx, cursor)
	return err
}

// socketSink writes catch-up batches to the session's socket: each batch is one write of the
// corked socket, whose wait paces the catch-up.
type socketSink struct{ s *session }

func (w socketSink) writeBatch(frames [][]byte) error {
	s := w.s
	s.cork.cork()
	for _, frame := range frames {
		select {
		case <-s.kill:
			_ = s.cork.uncork(s.g.cfg.WriteTimeout)
			return errSessionEnded
		default:
		}
		// Held back in memory: the uncork's write has the timeout.
		if err := s.write(context.Background(), frame); err != nil {
			_ = s.cork.uncork(s.g.cfg.WriteTimeout)
			return errSessionEnded
		}
	}
	// Puts the batch on the wire, unless the session writer still holds the socket corked:
	// then its own uncork does, right after.
	if err := s.cork.uncork(s.g.cfg.WriteTimeout); err != nil {
		s.writeFailed()
		return errSessionEnded
	}
	return nil
}
