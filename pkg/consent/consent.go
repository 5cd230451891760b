// Package consent decides who may reach whom: direct conversations that start as requests the
// other user accepts or ignores, blocks, and each user's presence visibility setting.
//
// The state is the STATE stream: the last event of each direct conversation's subject (its
// consent), of each block subject and of each privacy subject (streams.ConsentSubjects).
// JetStream copies those subjects into the CONSENT stream (streams.ConsentStream), and a Table
// mirrors CONSENT in memory through an ordered consumer, so a process (re)builds it at start,
// backup and replay of STATE carry it, and reading it needs no access to the rest of STATE
// (accounts and their password hashes, devices, push tokens); nothing of it is in the store.
// Positions are STATE seqs throughout: each copied event names its STATE seq in its
// Nats-Stream-Source header. The mirror holds only what differs from the
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
	"strconv"
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
	stream jetstream.Stream // CONSENT, for Sync

	mu         sync.RWMutex
	requests   map[string]Request          // conversation -> its open request
	blocks     map[string]map[string]Block // user -> blocked user -> block
	visibility map[string]string           // user -> contacts or nobody (everyone is not kept)
	applied    uint64                      // the STATE seq of the last event applied
	copied     uint64                      // the CONSENT seq of the last event applied
	changed    chan struct{}               // closed and replaced whenever applied or copied moves

	watchMu  sync.Mutex
	watchers map[int]func(Notice)
	nextID   int
}

// Request states a Notice reports.
const (
	RequestOpen     = "open"     // the request was made
	RequestAccepted = "accepted" // the recipient accepted it
	RequestIgnored  = "ignored"  // the recipient ignored it (only they are told)
)

// Notice is what the users of a direct conversation are told, live, when its request is made
// or answered: Users are whom to tell. A request made to a user who blocked the requester, or
// whom the requester blocked, is not told to its recipient (it never reaches a blocker); an
// ignore is told to the one who ignored only, so all their devices agree and the requester
// learns nothing.
type Notice struct {
	Request Request
	State   string
	Users   []string
}

// OnRequest calls fn with the Notice of every request event applied from now on, in STATE
// order, on the goroutine that feeds the table: fn must not block. The returned function stops
// the calls.
func (t *Table) OnRequest(fn func(Notice)) (stop func()) {
	t.watchMu.Lock()
	defer t.watchMu.Unlock()
	if t.watchers == nil {
		t.watchers = map[int]func(Notice){}
	}
	id := t.nextID
	t.nextID++
	t.watchers[id] = fn
	return func() {
		t.watchMu.Lock()
		delete(t.watchers, id)
		t.watchMu.Unlock()
	}
}

// noticeLocked is the notice of the direct event ev just applied, if it makes one.
func (t *Table) noticeLocked(ev streams.StateEvent, at time.Time) (Notice, bool) {
	d := ev.Direct
	if d == nil {
		return Notice{}, false
	}
	other := func(u string) string {
		if d.UserIDs[0] == u {
			return d.UserIDs[1]
		}
		return d.UserIDs[0]
	}
	switch ev.Kind {
	case streams.StateDirectOpened:
		if !d.Request {
			return Notice{}, false
		}
		r := Request{ConversationID: d.ConversationID, From: d.CreatedBy, To: other(d.CreatedBy), At: at}
		n := Notice{Request: r, State: RequestOpen, Users: []string{r.From}}
		if !t.blockedEitherLocked(r.From, r.To) {
			n.Users = append(n.Users, r.To)
		}
		return n, true
	case streams.StateDirectAccepted:
		r := Request{ConversationID: d.ConversationID, From: other(d.By), To: d.By, At: at}
		return Notice{Request: r, State: RequestAccepted, Users: []string{r.From, r.To}}, true
	case streams.StateDirectIgnored:
		r := Request{ConversationID: d.ConversationID, From: other(d.By), To: d.By, Ignored: true, At: at}
		return Notice{Request: r, State: RequestIgnored, Users: []string{r.To}}, true
	}
	return Notice{}, false
}

// New returns an empty table that nothing feeds: Apply fills it (tests, tools replaying STATE).
func New() *Table {
	return &Table{log: zap.NewNop(), requests: map[string]Request{}, blocks: map[string]map[string]Block{},
		visibility: map[string]string{}, changed: make(chan struct{})}
}

// Watch loads a table from CONSENT and keeps it current until Stop. It returns once every
// event that was on the stream when it started is applied.
func Watch(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (*Table, error) {
	t := New()
	if err := t.Follow(ctx, js, log); err != nil {
		return nil, err
	}
	return t, nil
}

// Follow feeds the table from CONSENT until Stop (once per table), returning once every event
// that was on the stream when it started is applied.
func (t *Table) Follow(ctx context.Context, js jetstream.JetStream, log *zap.Logger) error {
	t.log = log.Named("consent")
	var err error
	if t.stream, err = js.Stream(ctx, streams.ConsentStream); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, streams.ConsentStream, jetstream.OrderedConsumerConfig{})
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
		t.applyCopy(meta.Sequence.Stream, msg.Headers().Get(SourceHeader), msg.Subject(), msg.Data())
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

// SourceHeader is the header in which JetStream names where a sourced event came from.
const SourceHeader = "Nats-Stream-Source"

// SourceSeq is the STATE seq of an event JetStream copied into CONSENT, from its
// Nats-Stream-Source header ("<stream> <seq> ..."); ok is false if the header names none.
func SourceSeq(header string) (seq uint64, ok bool) {
	fields := strings.Fields(header)
	if len(fields) < 2 {
		return 0, false
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	return seq, err == nil && seq > 0
}

// Stop ends the mirror; the table keeps answering from what it had.
func (t *Table) Stop() {
	if t.cons != nil {
		t.cons.Stop()
		<-t.cons.Closed()
	}
}

// applyCopy applies the event at CONSENT seq copied, whose Nats-Stream-Source header is source.
func (t *Table) applyCopy(copied uint64, source, subject string, data []byte) {
	defer t.advanceCopied(copied)
	seq, ok := SourceSeq(source)
	if !ok {
		t.log.Warn("consent event without its STATE seq; skipped", zap.Uint64("consent_seq", copied), zap.String("subject", subject),
			zap.String("source", source))
		return
	}
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
	var notice Notice
	var notify bool
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
			// The request is whatever the ignore answers: CONSENT keeps only the last event of
			// a subject, so a table loaded afterwards sees the ignore without the opening.
			d := ev.Direct
			from := d.UserIDs[0]
			if from == d.By {
				from = d.UserIDs[1]
			}
			r, ok := t.requests[d.ConversationID]
			if !ok {
				r = Request{ConversationID: d.ConversationID, From: from, To: d.By, At: at}
			}
			if r.To == d.By {
				r.Ignored = true
				t.requests[d.ConversationID] = r
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
		notice, notify = t.noticeLocked(ev, at)
	}
	t.mu.Unlock()
	t.advance(seq)
	if notify {
		t.watchMu.Lock()
		for _, fn := range t.watchers {
			fn(notice)
		}
		t.watchMu.Unlock()
	}
}

// advance moves the applied STATE seq up to seq; advanceCopied the CONSENT seq.
func (t *Table) advance(seq uint64)          { t.raise(&t.applied, seq) }
func (t *Table) advanceCopied(copied uint64) { t.raise(&t.copied, copied) }

// raise moves the position *pos (t.applied or t.copied) up to seq and wakes the waiters.
func (t *Table) raise(pos *uint64, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq > *pos {
		*pos = seq
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// WaitFor returns once the event at STATE seq (one of the consent subjects) is applied: a
// writer calls it after its publish, so that its next request, and every component of its
// process, sees the change. Since the table reads the copy in CONSENT, the event is in CONSENT
// by then too, where every other process's Sync finds it.
func (t *Table) WaitFor(ctx context.Context, seq uint64) error {
	return t.wait(ctx, func() bool { return t.applied >= seq }, func() string {
		return fmt.Sprintf("state seq %d (applied %d)", seq, t.applied)
	})
}

// wait returns once done (called under the read lock) holds.
func (t *Table) wait(ctx context.Context, done func() bool, what func() string) error {
	for {
		t.mu.RLock()
		ok, changed := done(), t.changed
		var desc string
		if !ok && ctx.Err() != nil {
			desc = what()
		}
		t.mu.RUnlock()
		if ok {
			return nil
		}
		if desc != "" {
			return fmt.Errorf("consent: wait for %s: %w", desc, ctx.Err())
		}
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}

// Sync returns once the table has applied every event that was on CONSENT when it was called
// (one get of CONSENT's last message, for its seq), or fails after wait. A consumer that calls it
// before a chunk of CHAT events routes them under the consent of their time: a request or
// block whose writer has answered (it waits until the event is in CONSENT, see WaitFor) before
// a message was published is applied before that message is routed, whichever process
// recorded it.
func (t *Table) Sync(ctx context.Context, wait time.Duration) error {
	if t.stream == nil {
		return nil // fed by Apply alone
	}
	var last uint64
	switch m, err := t.stream.GetLastMsgForSubject(ctx, ">"); {
	case errors.Is(err, jetstream.ErrMsgNotFound): // empty
	case err != nil:
		return fmt.Errorf("consent: last seq: %w", err)
	default:
		last = m.Sequence
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return t.wait(ctx, func() bool { return t.copied >= last }, func() string {
		return fmt.Sprintf("consent seq %d (applied %d)", last, t.copied)
	})
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
