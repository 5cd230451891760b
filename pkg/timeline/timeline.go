// Package timeline reads a conversation's events completely: from the store up to the
// persister's ack floor, and from the CHAT stream after it. Sync and history both read through it,
// so they see the same events in the same order whether or not the persister is keeping up.
package timeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Reader reads conversation timelines. Safe for concurrent use.
type Reader struct {
	store store.Store
	js    jetstream.JetStream

	mu         sync.Mutex
	stream     jetstream.Stream // looked up once; direct gets need only its name
	persisted  consumer.Floor   // the persister's; read afresh whenever storedTTL has passed
	storedMark uint64           // the last Stored mark, and when it was read
	storedAt   time.Time
	storedTTL  time.Duration
	window     time.Duration // CHAT's duplicate window, from the last stream info, and when
	windowAt   time.Time
}

// New returns a Reader over the CHAT stream and st.
func New(st store.Store, js jetstream.JetStream) *Reader {
	return &Reader{store: st, js: js, storedTTL: defaultStoredTTL,
		persisted: consumer.Floor{Stream: streams.ChatStream, Consumer: streams.PersisterConsumer}}
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

// A reused floor more than longTail events below the head would make a catch-up read that many
// events from the stream, one direct get each (about 50 µs apiece here: a floor read during a
// burst of 10,000 sends cost a reconnect just after it 150 ms instead of 20). Such a floor is read
// again once it is longTailRefresh old, so a reconnect storm still asks at most every
// longTailRefresh.
const (
	longTail        = 256
	longTailRefresh = 20 * time.Millisecond
)

// Marks reads the current split. Head is read fresh, with a direct get of the stream's last
// event (no JetStream API request), because catch-up needs a head read after its route was
// registered. Stored is the persister's ack floor, but never below the stream's first sequence
// (what the stream no longer holds can only be read from the store); it is shared for a second
// (for longTailRefresh when it is more than longTail below the head), so a reconnect storm does
// not queue one API request per socket.
func (r *Reader) Marks(ctx context.Context) (Marks, error) {
	st, err := r.chat(ctx)
	if err != nil {
		return Marks{}, fmt.Errorf("timeline marks: %w", err)
	}
	var m Marks
	if m.Head, err = r.head(ctx, st); err != nil {
		return Marks{}, err
	}
	stored, err := r.stored(ctx, st, m.Head)
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

func (r *Reader) stored(ctx context.Context, st jetstream.Stream, head uint64) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	age := time.Since(r.storedAt)
	if age < r.storedTTL && (head <= r.storedMark+longTail || age < longTailRefresh) {
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
	floor, err := r.persisted.Read(ctx, r.js, math.MaxUint64)
	if err != nil {
		return 0, fmt.Errorf("timeline marks: %w", err)
	}
	stored = max(stored, floor)
	r.storedMark, r.storedAt = stored, time.Now()
	r.window, r.windowAt = info.Config.Duplicates, r.storedAt
	return stored, nil
}

// DuplicateWindow is CHAT's duplicate window as the stream is configured now: how long JetStream
// recognises a publish by its Nats-Msg-Id. It is the stream's own setting, not this process's
// --dedupe-window (each process that applies the definitions gives CHAT its own when it starts,
// and the last one wins; with --apply-definitions=false it is what natter init was last run
// with), read with the stream info behind Marks and shared the same way: at most a second old.
func (r *Reader) DuplicateWindow(ctx context.Context) (time.Duration, error) {
	st, err := r.chat(ctx)
	if err != nil {
		return 0, fmt.Errorf("timeline duplicate window: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.windowAt) < r.storedTTL {
		return r.window, nil
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("timeline duplicate window: stream info: %w", err)
	}
	r.window, r.windowAt = info.Config.Duplicates, time.Now()
	return r.window, nil
}

// Range calls fn for every timeline event of conversationID with from < seq <= to, oldest first.
// to must not exceed marks.Head.
func (r *Reader) Range(ctx context.Context, marks Marks, conversationID string, from, to uint64, fn func(store.Message) error) error {
	if to > marks.Head {
		return fmt.Errorf("timeline range: to %d beyond head %d", to, marks.Head)
	}
	last := from
	var buf []store.Message // reused for every page when the store can append to it
	for last < min(to, marks.Stored) {
		page, err := r.page(ctx, buf[:0], conversationID, store.Page{After: last, Oldest: true, Limit: store.MaxPageLimit})
		buf = page
		if err != nil {
			return fmt.Errorf("timeline range %s: store: %w", conversationID, err)
		}
		if len(page) == 0 {
			break
		}
		for i := len(page) - 1; i >= 0; i-- {
			m, err := r.resolve(ctx, page[i])
			if err != nil {
				return err
			}
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

// page reads a page of the store into buf (emptied) where the store can, into a new slice
// otherwise.
func (r *Reader) page(ctx context.Context, buf []store.Message, conversationID string, p store.Page) ([]store.Message, error) {
	if a, ok := r.store.(store.PageAppender); ok {
		return a.AppendMessages(ctx, buf, conversationID, p)
	}
	return r.store.Messages(ctx, conversationID, p)
}

// resolve completes a revision entry read from the store, which keeps no state of its own:
// an edit gets the state it left its target in (the target's latest text and edit time, or
// its deletion), a delete or hide its deletion time.
func (r *Reader) resolve(ctx context.Context, m store.Message) (store.Message, error) {
	switch m.Kind {
	case streams.KindDelete, streams.KindHide:
		if m.DeletedAt.IsZero() {
			m.DeletedAt = m.SentAt
		}
	case streams.KindEdit:
		if m.Text != "" || m.Target == 0 {
			return m, nil // read from the stream: it carries its own text
		}
		page, err := r.store.Messages(ctx, m.ConversationID, store.Page{After: m.Target - 1, Oldest: true, Limit: 1})
		if err != nil {
			return m, fmt.Errorf("timeline: target %d of edit %s/%d: %w", m.Target, m.ConversationID, m.Seq, err)
		}
		if len(page) == 0 || page[0].Seq != m.Target {
			return m, nil
		}
		t := page[0]
		m.Text, m.EditedAt, m.DeletedAt, m.HiddenFor = t.Text, t.EditedAt, t.DeletedAt, t.HiddenFor
	}
	return m, nil
}

// Page answers a history page exactly as store.Messages would if the persister were caught up,
// with the edits and deletes the persister has not applied yet applied to the page's messages.
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
	for i := range stored {
		if stored[i], err = r.resolve(ctx, stored[i]); err != nil {
			return nil, err
		}
	}
	var recent, revisions []store.Message
	if marks.Head > marks.Stored {
		err = r.tail(ctx, conversationID, marks.Stored, marks.Head, func(m store.Message) error {
			if (p.Before == 0 || m.Seq < p.Before) && m.Seq > p.After {
				recent = append(recent, m)
			}
			if streams.Revises(m.Kind) {
				revisions = append(revisions, m)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(recent) == 0 {
		return applyRevisions(stored, revisions), nil
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
	return applyRevisions(all, revisions), nil
}

// applyRevisions applies revision events (oldest first) to the messages of page they target,
// as the persister will (store.Revise), and to the edits of page that target the same messages.
func applyRevisions(page, revisions []store.Message) []store.Message {
	for _, rev := range revisions {
		for i, m := range page {
			switch {
			case m.Kind == streams.KindMsg && m.Seq == rev.Target:
				page[i], _ = store.Revise(m, Revision(rev))
			case m.Kind == streams.KindEdit && m.Target == rev.Target && m.Seq < rev.Seq:
				// An edit shows the state it left its target in; a later delete or hide
				// overrides it as it does the target.
				if rev.Kind == streams.KindDelete && !m.Deleted() {
					m.Text, m.DeletedAt = "", rev.SentAt
				}
				if rev.Kind == streams.KindHide {
					m, _ = store.Revise(store.Message{Kind: streams.KindMsg, HiddenFor: m.HiddenFor}, Revision(rev))
					page[i].HiddenFor = m.HiddenFor
					continue
				}
				page[i] = m
			}
		}
	}
	return page
}

// Revision is the store revision a revision event (edit, delete or hide, as FromStream reads it)
// makes to its target.
func Revision(m store.Message) store.Revision {
	return store.Revision{Kind: m.Kind, Seq: m.Seq, Text: m.Text, UserID: m.SenderID, At: m.SentAt}
}

// CountAfter counts the text messages of conversationID with seq > after that were not sent by
// notFrom and are not deleted (for everyone, or by notFrom for themselves), stopping at limit: the unread count of a member whose read watermark is after.
func (r *Reader) CountAfter(ctx context.Context, conversationID string, after uint64, notFrom string, limit int) (int, error) {
	return r.CountAfterFunc(ctx, conversationID, after, func(m store.Message) bool { return m.SenderID != notFrom && !m.HiddenTo(notFrom) }, limit)
}

// CountAfterFunc counts the msg events above after that are not deleted for everyone and for
// which counts is true, stopping at limit.
func (r *Reader) CountAfterFunc(ctx context.Context, conversationID string, after uint64, counts func(store.Message) bool, limit int) (int, error) {
	n := 0
	p := store.Page{After: after, Oldest: true, Limit: store.MaxPageLimit}
	for n < limit {
		page, err := r.Page(ctx, conversationID, p)
		if err != nil {
			return 0, err
		}
		for _, m := range page {
			if m.Kind == streams.KindMsg && !m.Deleted() && counts(m) {
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
// not part of the timeline (receipts). A revision (edit, delete, hide) carries the state it leaves
// its target in: an edit its text and EditedAt, a delete or hide its DeletedAt.
func FromStream(subject string, seq uint64, data []byte) (m store.Message, ok bool, err error) {
	_, kind, valid := streams.ParseChatSubject(subject)
	if !valid {
		return store.Message{}, false, fmt.Errorf("not a chat subject: %q", subject)
	}
	if kind != streams.KindMsg && kind != streams.KindMember && !streams.Revises(kind) {
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
	if ev.Target != nil && streams.Revises(ev.Kind) {
		m.Target, m.TargetID = ev.Target.Seq, ev.Target.MessageID
		switch ev.Kind {
		case streams.KindEdit:
			m.EditedAt = m.SentAt
		default:
			m.Text, m.DeletedAt = "", m.SentAt
		}
	}
	return m
}

// SeesTarget reports whether member m may see revision ev (an edit, delete or hide; any other
// event passes): only a member who may see its target does, and a hide only its sender.
func SeesTarget(m store.Member, ev streams.ChatEvent) bool {
	if !streams.Revises(ev.Kind) || ev.Target == nil {
		return true
	}
	return m.Sees(ev.Target.Seq) && (ev.Kind != streams.KindHide || m.UserID == ev.SenderID)
}

// Sees reports whether member m may see timeline event e: its seq and, for a revision, its
// target (see SeesTarget).
func Sees(m store.Member, e store.Message) bool {
	if !m.Sees(e.Seq) {
		return false
	}
	if !streams.Revises(e.Kind) {
		return true
	}
	return m.Sees(e.Target) && (e.Kind != streams.KindHide || m.UserID == e.SenderID)
}

// View is m as viewer sees it; ok is false when viewer does not see it at all (another user's
// hide). A message or edit viewer deleted for themselves shows as deleted, without text.
func View(m store.Message, viewer string) (store.Message, bool) {
	if m.Kind == streams.KindHide {
		return m, m.SenderID == viewer
	}
	if (m.Kind == streams.KindMsg || m.Kind == streams.KindEdit) && m.HiddenTo(viewer) {
		m.Text = ""
		if m.DeletedAt.IsZero() {
			m.DeletedAt = m.SentAt // hidden: deleted for this viewer; the frame only says so
		}
	}
	return m, true
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
