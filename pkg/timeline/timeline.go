// Package timeline reads a conversation's events completely: from the store up to the
// persister's ack floor, and from the CHAT stream after it. Sync and history both read through it,
// so they see the same events in the same order whether or not the persister is keeping up.
package timeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Reader reads conversation timelines. Safe for concurrent use.
type Reader struct {
	store store.Store
	js    jetstream.JetStream

	mu         sync.Mutex
	stream     jetstream.Stream // looked up once; direct gets need only its name
	storedMark uint64           // the last ack floor read, and when
	storedAt   time.Time
	storedTTL  time.Duration
}

// New returns a Reader over the CHAT stream and st.
func New(st store.Store, js jetstream.JetStream) *Reader {
	return &Reader{store: st, js: js, storedTTL: defaultStoredTTL}
}

func (r *Reader) chat(ctx context.Context) (jetstream.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream == nil {
		st, err := r.js.Stream(ctx, streams.ChatStream)
		if err != nil {
			return nil, fmt.Errorf("chat stream: %w", err)
		}
		r.stream = st
	}
	return r.stream, nil
}

// Marks split the timeline: every event with seq <= Stored is in the store; every event with
// Stored < seq <= Head is in the stream.
type Marks struct {
	Stored uint64
	Head   uint64
}

// defaultStoredTTL is how long a read of the persister's ack floor is reused. Any past ack floor is
// still a true "everything up to here is stored", so a stale one only lengthens the stream tail.
const defaultStoredTTL = time.Second

// Marks reads the current split. Head is read fresh, with a direct get of the stream's last
// event (no JetStream API request), because catch-up needs a head read after its route was
// registered. Stored is the persister's ack floor, but never below the stream's first sequence
// (what the stream no longer holds can only be read from the store); it is shared for a second,
// so a reconnect storm does not queue one API request per socket.
func (r *Reader) Marks(ctx context.Context) (Marks, error) {
	st, err := r.chat(ctx)
	if err != nil {
		return Marks{}, fmt.Errorf("timeline marks: %w", err)
	}
	var m Marks
	if m.Head, err = r.head(ctx, st); err != nil {
		return Marks{}, err
	}
	stored, err := r.stored(ctx, st)
	if err != nil {
		return Marks{}, err
	}
	m.Stored = min(stored, m.Head)
	return m, nil
}

// Head is the seq of the newest CHAT event (0 for none), read with a direct get.
func (r *Reader) Head(ctx context.Context) (uint64, error) {
	st, err := r.chat(ctx)
	if err != nil {
		return 0, fmt.Errorf("timeline head: %w", err)
	}
	return r.head(ctx, st)
}

func (r *Reader) head(ctx context.Context, st jetstream.Stream) (uint64, error) {
	last, err := st.GetLastMsgForSubject(ctx, streams.ChatAll)
	switch {
	case err == nil:
		return last.Sequence, nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	default:
		return 0, fmt.Errorf("timeline head: %w", err)
	}
}

func (r *Reader) stored(ctx context.Context, st jetstream.Stream) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.storedAt) < r.storedTTL {
		return r.storedMark, nil
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("timeline marks: stream info: %w", err)
	}
	var stored uint64
	if info.State.FirstSeq > 0 {
		stored = info.State.FirstSeq - 1
	}
	ci, err := st.Consumer(ctx, streams.PersisterConsumer)
	switch {
	case err == nil:
		stored = max(stored, ci.CachedInfo().AckFloor.Stream)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return 0, fmt.Errorf("timeline marks: persister consumer: %w", err)
	}
	r.storedMark, r.storedAt = stored, time.Now()
	return stored, nil
}

// Range calls fn for every timeline event of conversationID with from < seq <= to, oldest first.
// to must not exceed marks.Head.
func (r *Reader) Range(ctx context.Context, marks Marks, conversationID string, from, to uint64, fn func(store.Message) error) error {
	if to > marks.Head {
		return fmt.Errorf("timeline range: to %d beyond head %d", to, marks.Head)
	}
	last := from
	for last < min(to, marks.Stored) {
		page, err := r.store.Messages(ctx, conversationID, store.Page{After: last, Oldest: true, Limit: store.MaxPageLimit})
		if err != nil {
			return fmt.Errorf("timeline range %s: store: %w", conversationID, err)
		}
		if len(page) == 0 {
			break
		}
		for i := len(page) - 1; i >= 0; i-- {
			m := page[i]
			if m.Seq > min(to, marks.Stored) {
				// Above the ack floor the store may have gaps (writers run in parallel): the
				// stream answers from here on.
				return r.tail(ctx, conversationID, max(last, from, marks.Stored), to, fn)
			}
			if err := fn(m); err != nil {
				return err
			}
			last = m.Seq
		}
	}
	return r.tail(ctx, conversationID, max(last, from, marks.Stored), to, fn)
}

// Page answers a history page exactly as store.Messages would if the persister were caught up.
func (r *Reader) Page(ctx context.Context, conversationID string, p store.Page) ([]store.Message, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, err
	}
	marks, err := r.Marks(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := r.store.Messages(ctx, conversationID, p)
	if err != nil {
		return nil, fmt.Errorf("history %s: store: %w", conversationID, err)
	}
	var recent []store.Message
	if marks.Head > marks.Stored {
		err = r.tail(ctx, conversationID, marks.Stored, marks.Head, func(m store.Message) error {
			if (p.Before == 0 || m.Seq < p.Before) && m.Seq > p.After {
				recent = append(recent, m)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(recent) == 0 {
		return stored, nil
	}
	all := append(stored, recent...)
	slices.SortFunc(all, func(a, b store.Message) int { return cmpDesc(a.Seq, b.Seq) })
	all = slices.CompactFunc(all, func(a, b store.Message) bool { return a.Seq == b.Seq })
	if len(all) > p.Limit {
		if p.Forward() { // the Limit oldest after p.After
			all = all[len(all)-p.Limit:]
		} else {
			all = all[:p.Limit]
		}
	}
	return all, nil
}

// CountAfter counts the text messages of conversationID with seq > after that were not sent by
// notFrom, stopping at limit: the unread count of a member whose read watermark is after.
func (r *Reader) CountAfter(ctx context.Context, conversationID string, after uint64, notFrom string, limit int) (int, error) {
	return r.CountAfterFunc(ctx, conversationID, after, func(m store.Message) bool { return m.SenderID != notFrom }, limit)
}

// CountAfterFunc counts the msg events above after for which counts is true, stopping at limit.
func (r *Reader) CountAfterFunc(ctx context.Context, conversationID string, after uint64, counts func(store.Message) bool, limit int) (int, error) {
	n := 0
	p := store.Page{After: after, Oldest: true, Limit: store.MaxPageLimit}
	for n < limit {
		page, err := r.Page(ctx, conversationID, p)
		if err != nil {
			return 0, err
		}
		for _, m := range page {
			if m.Kind == streams.KindMsg && counts(m) {
				n++
			}
		}
		if len(page) < p.Limit {
			break
		}
		p.After = page[0].Seq // newest of this page
	}
	return min(n, limit), nil
}

// Around is a page of up to limit events around seq, newest first (jump to a message), with
// store.Around's shape over the complete timeline.
func (r *Reader) Around(ctx context.Context, conversationID string, seq uint64, limit int) ([]store.Message, error) {
	return store.AroundWith(ctx, func(ctx context.Context, p store.Page) ([]store.Message, error) {
		return r.Page(ctx, conversationID, p)
	}, seq, limit)
}

// tail reads the stream's events of conversationID with from < seq <= to, oldest first, by direct
// gets ("next message on this subject at or after seq"), so no consumer is created.
func (r *Reader) tail(ctx context.Context, conversationID string, from, to uint64, fn func(store.Message) error) error {
	if from >= to {
		return nil
	}
	st, err := r.chat(ctx)
	if err != nil {
		return fmt.Errorf("timeline tail: %w", err)
	}
	subject := streams.ChatSubject(conversationID, "*")
	for next := from + 1; next <= to; {
		raw, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("timeline tail %s at %d: %w", conversationID, next, err)
		}
		if raw.Sequence > to {
			return nil
		}
		next = raw.Sequence + 1
		m, ok, err := FromStream(raw.Subject, raw.Sequence, raw.Data)
		if err != nil {
			return fmt.Errorf("timeline tail %s at %d: %w", conversationID, raw.Sequence, err)
		}
		if !ok {
			continue
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// FromStream turns a CHAT stream message into a timeline event. ok is false for events that are
// not part of the timeline (receipts, edits).
func FromStream(subject string, seq uint64, data []byte) (m store.Message, ok bool, err error) {
	_, kind, valid := streams.ParseChatSubject(subject)
	if !valid {
		return store.Message{}, false, fmt.Errorf("not a chat subject: %q", subject)
	}
	if kind != streams.KindMsg && kind != streams.KindMember {
		return store.Message{}, false, nil
	}
	ev, err := streams.DecodeChatEvent(data)
	if err != nil {
		return store.Message{}, false, err
	}
	return FromEvent(seq, ev), true, nil
}

// FromEvent turns a decoded CHAT event at seq into a timeline event.
func FromEvent(seq uint64, ev streams.ChatEvent) store.Message {
	m := store.Message{
		ConversationID: ev.ConversationID, Seq: seq, ID: ev.MessageID, Kind: ev.Kind,
		SenderID: ev.SenderID, SenderDevice: ev.SenderDevice, ClientMsgID: ev.ClientMsgID,
		Text: ev.Text, SentAt: time.UnixMilli(ev.SentAt).UTC(),
	}
	if ev.Member != nil {
		m.Member = encodeMember(*ev.Member)
	}
	return m
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
