// Package consent decides who may reach whom: direct conversations that start as requests the
// other user accepts or ignores, blocks, and each user's presence visibility setting.
//
// The state is the STATE stream: the last event of each direct conversation's subject (its
// consent), of each block subject and of each privacy subject (streams.ConsentSubjects). A
// Table mirrors it in memory through an ordered consumer that starts from the last event per
// subject, so a process (re)builds it from the stream at start, and backup and replay of STATE
// carry it; nothing of it is in the store. The mirror holds only what differs from the
// default: requests not (yet) accepted, blocks, and settings other than "everyone"; the rule
// checks on the hot path (every delivered message, typing indicator, receipt and presence
// change) are map lookups under a read lock, with no store read and no allocation.
//
// The rules themselves (who sees what of whom) are the Sees* methods; docs/security.md has them
// as one table, which services/app's TestConsentMatrix checks cell by cell against a running
// natter.
package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/streams"
)

// Direct reports whether conversationID names a direct conversation: their ids start with "d"
// (services/api.DirectConversationID), a group's with "g".
func Direct(conversationID string) bool { return strings.HasPrefix(conversationID, "d") }

// Request is a direct conversation that its recipient has not accepted.
type Request struct {
	ConversationID string
	From           string // who opened it
	To             string // who is asked
	Ignored        bool   // To ignored it: it stays a request, out of their request list
	At             time.Time
}

// Block is one user's block of another.
type Block struct {
	UserID    string
	BlockedID string
	At        time.Time
}

// Table is the in-memory mirror of consent, blocks and presence settings.
type Table struct {
	log    *zap.Logger
	cons   jetstream.ConsumeContext
	stream jetstream.Stream // STATE, for Sync

	mu         sync.RWMutex
	requests   map[string]Request          // conversation -> its open request
	blocks     map[string]map[string]Block // user -> blocked user -> block
	visibility map[string]string           // user -> contacts or nobody (everyone is not kept)
	applied    uint64                      // the STATE seq of the last event applied
	changed    chan struct{}               // closed and replaced whenever applied moves
}

// New returns an empty table that nothing feeds: Apply fills it (tests, tools replaying STATE).
func New() *Table {
	return &Table{log: zap.NewNop(), requests: map[string]Request{}, blocks: map[string]map[string]Block{},
		visibility: map[string]string{}, changed: make(chan struct{})}
}

// Watch loads a table from STATE and keeps it current until Stop. It returns once every event
// that was on the stream when it started is applied.
func Watch(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (*Table, error) {
	t := New()
	if err := t.Follow(ctx, js, log); err != nil {
		return nil, err
	}
	return t, nil
}

// Follow feeds the table from STATE until Stop (once per table), returning once every event
// that was on the stream when it started is applied.
func (t *Table) Follow(ctx context.Context, js jetstream.JetStream, log *zap.Logger) error {
	t.log = log.Named("consent")
	var err error
	if t.stream, err = js.Stream(ctx, streams.StateStream); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, streams.StateStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: streams.ConsentSubjects,
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("consent: consumer: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("consent: consumer info: %w", err)
	}
	loaded := make(chan struct{})
	var once sync.Once
	if info.NumPending == 0 {
		once.Do(func() { close(loaded) })
	}
	t.cons, err = cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			t.log.Warn("consent event without metadata", zap.Error(err))
			return
		}
		t.applyMsg(meta.Sequence.Stream, msg.Subject(), msg.Data())
		if meta.NumPending == 0 {
			once.Do(func() { close(loaded) })
		}
	})
	if err != nil {
		return fmt.Errorf("consent: consume: %w", err)
	}
	select {
	case <-loaded:
		return nil
	case <-ctx.Done():
		t.Stop()
		return fmt.Errorf("consent: load: %w", ctx.Err())
	}
}

// Stop ends the mirror; the table keeps answering from what it had.
func (t *Table) Stop() {
	if t.cons != nil {
		t.cons.Stop()
		<-t.cons.Closed()
	}
}

func (t *Table) applyMsg(seq uint64, subject string, data []byte) {
	ev, err := streams.DecodeStateEvent(subject, data)
	if err != nil {
		t.log.Warn("bad consent event; skipped", zap.Uint64("seq", seq), zap.String("subject", subject), zap.Error(err))
		t.advance(seq)
		return
	}
	t.Apply(seq, ev)
}

// Apply applies the state event at STATE seq. Events of other kinds only move the applied
// seq. Applying an event again, or an older event of a subject after a newer one's seq, changes
// nothing.
func (t *Table) Apply(seq uint64, ev streams.StateEvent) {
	t.mu.Lock()
	if seq > t.applied {
		at := time.UnixMilli(ev.At).UTC()
		switch ev.Kind {
		case streams.StateDirectOpened:
			d := ev.Direct
			if d.Request {
				to := d.UserIDs[0]
				if to == d.CreatedBy {
					to = d.UserIDs[1]
				}
				t.requests[d.ConversationID] = Request{ConversationID: d.ConversationID, From: d.CreatedBy, To: to, At: at}
			} else {
				delete(t.requests, d.ConversationID)
			}
		case streams.StateDirectAccepted:
			delete(t.requests, ev.Direct.ConversationID)
		case streams.StateDirectIgnored:
			if r, ok := t.requests[ev.Direct.ConversationID]; ok && r.To == ev.Direct.By {
				r.Ignored = true
				t.requests[ev.Direct.ConversationID] = r
			}
		case streams.StateUserBlocked:
			b := ev.Block
			if t.blocks[b.UserID] == nil {
				t.blocks[b.UserID] = map[string]Block{}
			}
			t.blocks[b.UserID][b.BlockedID] = Block{UserID: b.UserID, BlockedID: b.BlockedID, At: at}
		case streams.StateUserUnblocked:
			b := ev.Block
			delete(t.blocks[b.UserID], b.BlockedID)
			if len(t.blocks[b.UserID]) == 0 {
				delete(t.blocks, b.UserID)
			}
		case streams.StatePresenceSet:
			if p := ev.Privacy; p.Presence == streams.PresenceEveryone {
				delete(t.visibility, p.UserID)
			} else {
				t.visibility[p.UserID] = p.Presence
			}
		}
	}
	t.mu.Unlock()
	t.advance(seq)
}

func (t *Table) advance(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq > t.applied {
		t.applied = seq
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// WaitFor returns once the event at STATE seq (one of the consent subjects) is applied: a
// writer calls it after its publish, so that its next request, and every component of its
// process, sees the change.
func (t *Table) WaitFor(ctx context.Context, seq uint64) error {
	for {
		t.mu.RLock()
		applied, changed := t.applied, t.changed
		t.mu.RUnlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("consent: wait for state seq %d (applied %d): %w", seq, applied, ctx.Err())
		}
	}
}

// Sync returns once the table has applied every consent event that was on STATE when it was
// called (three direct gets: the last event of each consent subject), or fails after wait. A
// consumer that calls it before a chunk of CHAT events routes them under the consent of their
// time: a request or block recorded (acknowledged) before a message was published is applied
// before that message is routed, whichever process recorded it.
func (t *Table) Sync(ctx context.Context, wait time.Duration) error {
	if t.stream == nil {
		return nil // fed by Apply alone
	}
	var last uint64
	for _, subject := range streams.ConsentSubjects {
		m, err := t.stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("consent: last of %s: %w", subject, err)
		}
		last = max(last, m.Sequence)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return t.WaitFor(ctx, last)
}

// Blocked reports whether user blocked other.
func (t *Table) Blocked(user, other string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.blocks[user][other]
	return ok
}

// Blocks lists the users user blocked, oldest block first.
func (t *Table) Blocks(user string) []Block {
	t.mu.RLock()
	out := make([]Block, 0, len(t.blocks[user]))
	for _, b := range t.blocks[user] {
		out = append(out, b)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Block) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.BlockedID, b.BlockedID)
	})
	return out
}

// Request returns the open request of a direct conversation; ok is false once it is accepted
// (or for a conversation opened before requests existed, or a group).
func (t *Table) Request(conversationID string) (r Request, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok = t.requests[conversationID]
	return r, ok
}

// PresenceVisibility is user's setting: streams.PresenceEveryone, PresenceContacts or
// PresenceNobody.
func (t *Table) PresenceVisibility(user string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if v, ok := t.visibility[user]; ok {
		return v
	}
	return streams.PresenceEveryone
}

// blockedEitherLocked reports whether a blocked b or b blocked a.
func (t *Table) blockedEitherLocked(a, b string) bool {
	_, ab := t.blocks[a][b]
	_, ba := t.blocks[b][a]
	return ab || ba
}

// SeesMessage reports whether viewer, a member of conversationID, may receive sender's message
// in it: live, through sync and history, as a push and in the unread count. Nobody sees the
// messages of someone they blocked; in a direct conversation a block either way hides both
// sides, and the requester's messages are held from the recipient until the request is
// accepted (the recipient's own messages reach the requester, who asked).
func (t *Table) SeesMessage(viewer, sender, conversationID string) bool {
	if viewer == sender {
		return true
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if _, ok := t.blocks[viewer][sender]; ok {
		return false
	}
	if !Direct(conversationID) {
		return true
	}
	if _, ok := t.blocks[sender][viewer]; ok {
		return false
	}
	r, pending := t.requests[conversationID]
	return !pending || r.From != sender
}

// SeesActivity reports whether viewer may see actor's typing indicators and read and delivered
// receipts in conversationID: in a direct conversation only once it is accepted and with no
// block either way; in a group unless viewer blocked actor.
func (t *Table) SeesActivity(viewer, actor, conversationID string) bool {
	if viewer == actor {
		return true
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if _, ok := t.blocks[viewer][actor]; ok {
		return false
	}
	if !Direct(conversationID) {
		return true
	}
	if _, ok := t.blocks[actor][viewer]; ok {
		return false
	}
	_, pending := t.requests[conversationID]
	return !pending
}

// Ties is what viewer shares with another user, as far as presence is concerned.
type Ties struct {
	// Conversation: a current conversation in common, a group or an accepted direct one (a
	// request does not count).
	Conversation bool
	// Contact: an accepted direct conversation in common.
	Contact bool
}

// SeesPresence reports whether viewer may see subject's online status and last seen, given what
// they share: not across a block either way, and as subject's setting allows (everyone who
// shares a conversation, contacts only, or nobody).
func (t *Table) SeesPresence(viewer, subject string, ties Ties) bool {
	if viewer == subject {
		return true
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.blockedEitherLocked(viewer, subject) {
		return false
	}
	switch t.visibility[subject] {
	case streams.PresenceNobody:
		return false
	case streams.PresenceContacts:
		return ties.Contact
	default:
		return ties.Conversation || ties.Contact
	}
}

// Accepted reports whether the direct conversation is accepted (a group: always).
func (t *Table) Accepted(conversationID string) bool {
	_, pending := t.Request(conversationID)
	return !pending
}
