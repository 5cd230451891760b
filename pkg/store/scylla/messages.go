package scylla

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scylladb/gocqlx/v3"

	"github.com/natter-chat/natter/pkg/store"
)

type messageRow struct {
	ConversationID string `db:"conversation_id"`
	Bucket         int64  `db:"bucket"`
	Seq            int64  `db:"seq"`
	MessageID      string `db:"message_id"`
	Kind           string `db:"kind"`
	SenderID       string `db:"sender_id"`
	SenderDevice   string `db:"sender_device"`
	ClientMsgID    string `db:"client_msg_id"`
	Text           string `db:"body"`
	Member         []byte `db:"member"`
	SentAt         int64  `db:"sent_at"`
	// Revisions (migration 0005). Null cells read as zero values (nil for the pointers), and
	// zero values are written as unset (unsetEmpty): "not edited" and "not deleted" are null.
	Target     *int64   `db:"target"`
	TargetID   string   `db:"target_id"`
	EditedAt   *int64   `db:"edited_at"`
	DeletedAt  *int64   `db:"deleted_at"`
	HiddenFor  []string `db:"hidden_for"`
	RevisedSeq *int64   `db:"revised_seq"`
}

func (r messageRow) message() store.Message {
	m := store.Message{ConversationID: r.ConversationID, Seq: uint64(r.Seq), ID: r.MessageID, Kind: r.Kind,
		SenderID: r.SenderID, SenderDevice: r.SenderDevice, ClientMsgID: r.ClientMsgID, Text: r.Text,
		Member: nilIfEmpty(r.Member), SentAt: fromMS(r.SentAt),
		Target: uint64(deref(r.Target)), TargetID: r.TargetID, RevisedSeq: uint64(deref(r.RevisedSeq))}
	if r.EditedAt != nil {
		m.EditedAt = fromMS(*r.EditedAt)
	}
	if r.DeletedAt != nil {
		m.DeletedAt = fromMS(*r.DeletedAt)
	}
	if len(r.HiddenFor) > 0 {
		m.HiddenFor = slices.Sorted(slices.Values(r.HiddenFor)) // a set reads sorted; made sure
	}
	return m
}

// deref is *p, 0 for nil.
func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// messageRowOf is the row that stores m.
func messageRowOf(m store.Message, bucketSize uint64) messageRow {
	r := messageRow{ConversationID: m.ConversationID, Bucket: bucketOf(m.Seq, bucketSize), Seq: int64(m.Seq),
		MessageID: m.ID, Kind: m.Kind, SenderID: m.SenderID, SenderDevice: m.SenderDevice,
		ClientMsgID: m.ClientMsgID, Text: m.Text, Member: nilIfEmpty(m.Member), SentAt: toMS(m.SentAt),
		TargetID: m.TargetID, HiddenFor: m.HiddenFor}
	if m.Target != 0 {
		r.Target = new(int64(m.Target))
	}
	if m.RevisedSeq != 0 { // null until the first edit: messageEditFirstIf relies on it
		r.RevisedSeq = new(int64(m.RevisedSeq))
	}
	if !m.EditedAt.IsZero() {
		r.EditedAt = new(toMS(m.EditedAt))
	}
	if !m.DeletedAt.IsZero() {
		r.DeletedAt = new(toMS(m.DeletedAt))
	}
	return r
}

// clientRow is a dedupe claim: (sender, client msg id) belongs to the message at (conversation, seq).
type clientRow struct {
	SenderID       string `db:"sender_id"`
	ClientMsgID    string `db:"client_msg_id"`
	ConversationID string `db:"conversation_id"`
	Seq            int64  `db:"seq"`
}

// InsertMessage implements store.Store. The writes, in order:
//
//  1. For a client send (non-empty ClientMsgID): claim (sender, client msg id) for
//     (conversation, seq) with INSERT IF NOT EXISTS. Exactly one of concurrent duplicates wins
//     the claim. A claim held for another (conversation, seq) means this is a duplicate: the
//     earlier message is returned and nothing is written. A claim held for this same
//     (conversation, seq) is a replay of a send that may have crashed before step 3: carry on.
//  2. Index the message: its bucket in message_buckets, its id in messages_by_id. Both are
//     plain idempotent upserts, written before the message so that a reader who finds the
//     message also finds its indexes.
//  3. Write the message row with INSERT IF NOT EXISTS: the commit point. If (conversation,
//     seq) is taken, the stored message is returned with inserted=false (and the claim of
//     step 1, which can now never be completed, is given back).
//
// A crash between any two steps leaves the store answering as if the message was not inserted
// (a claim or index that points to no matching message is ignored by every read), and the
// consumer's redelivery of the same event completes it. A duplicate that finds the earlier
// send's claim but not yet its message waits for it a little (awaitFor), then fails with a
// transient error. After a timeout whose outcome is unknown, a retry may report inserted=false
// for a message that the first attempt inserted: the stored message returned is right either way.
func (s *Store) InsertMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	stored, inserted, err := s.insertMessage(ctx, m)
	if err != nil {
		return store.Message{}, false, fmt.Errorf("scylla: insert message %s/%d: %w", m.ConversationID, m.Seq, err)
	}
	return stored, inserted, nil
}

func (s *Store) insertMessage(ctx context.Context, m store.Message) (store.Message, bool, error) {
	switch {
	case m.ConversationID == "":
		return store.Message{}, false, errEmptyID
	case m.Seq == 0 || m.Seq > maxSeq:
		return store.Message{}, false, fmt.Errorf("seq %d not in 1..%d", m.Seq, uint64(maxSeq))
	case m.ClientMsgID != "" && m.SenderID == "":
		return store.Message{}, false, errors.New("client msg id without sender")
	case m.Target > maxSeq || m.RevisedSeq > maxSeq:
		return store.Message{}, false, fmt.Errorf("target or revised seq above %d", uint64(maxSeq))
	}
	row := messageRowOf(m, s.bucketSize)
	claim := clientRow{SenderID: m.SenderID, ClientMsgID: m.ClientMsgID, ConversationID: m.ConversationID, Seq: row.Seq}

	if m.ClientMsgID != "" {
		earlier, dup, err := s.claimClientID(ctx, claim)
		if err != nil || dup {
			return earlier, false, err
		}
	}

	if err := s.query(ctx, q.bucketPut).BindStruct(row).ExecRelease(); err != nil {
		return store.Message{}, false, fmt.Errorf("index bucket: %w", err)
	}
	if m.ID != "" {
		if err := s.query(ctx, q.messageIDPut).BindStruct(row).ExecRelease(); err != nil {
			return store.Message{}, false, fmt.Errorf("index message id: %w", err)
		}
	}

	var prev messageRow
	applied, err := s.query(ctx, q.messageInsertIfNotExists).WithBindTransformer(unsetEmpty).BindStruct(row).GetCASRelease(&prev)
	if err != nil {
		return store.Message{}, false, fmt.Errorf("write message: %w", err)
	}
	if applied {
		return row.message(), true, nil
	}
	if m.ClientMsgID != "" && !sentAs(prev.message(), m.SenderID, m.ClientMsgID) {
		// The seq holds another message: this send is not stored, so its claim (made now or
		// by an earlier attempt) can never be completed and must not stand.
		if err := s.releaseClaim(ctx, claim); err != nil {
			return store.Message{}, false, err
		}
	}
	return prev.message(), false, nil
}

// claimClientID claims c for its message, or finds the claim made by an earlier attempt of the
// same send. It reports dup, with the earlier message, if another message holds the claim.
func (s *Store) claimClientID(ctx context.Context, c clientRow) (earlier store.Message, dup bool, err error) {
	const attempts = 4
	for range attempts {
		var prev clientRow
		applied, err := s.query(ctx, q.clientClaim).BindStruct(c).GetCASRelease(&prev)
		if err != nil {
			return store.Message{}, false, fmt.Errorf("claim client msg id: %w", err)
		}
		if applied || (prev.ConversationID == c.ConversationID && prev.Seq == c.Seq) {
			return store.Message{}, false, nil
		}
		m, err := s.awaitMessage(ctx, prev.ConversationID, prev.Seq)
		if err != nil {
			// The earlier send's claim is made but not its message: it is being written, or
			// its writer crashed and the redelivery of that send will write it.
			return store.Message{}, false, fmt.Errorf("duplicate of %s/%d, not written yet: %w",
				prev.ConversationID, prev.Seq, err)
		}
		if sentAs(m, c.SenderID, c.ClientMsgID) {
			return m, true, nil
		}
		// The claimed seq holds another message, so the claim can never complete: its writer
		// gives it back, or crashed before it could. Give it back and claim again.
		if err := s.releaseClaim(ctx, prev); err != nil {
			return store.Message{}, false, err
		}
	}
	return store.Message{}, false, fmt.Errorf("claim client msg id: still contended after %d attempts", attempts)
}

// releaseClaim deletes claim c if it still names c's (conversation, seq).
func (s *Store) releaseClaim(ctx context.Context, c clientRow) error {
	if _, err := s.query(ctx, q.clientReleaseIf).BindStruct(c).ExecCASRelease(); err != nil {
		return fmt.Errorf("give back client msg id claim: %w", err)
	}
	return nil
}

// sentAs reports whether m is the send of (sender, client msg id).
func sentAs(m store.Message, senderID, clientMsgID string) bool {
	return m.SenderID == senderID && m.ClientMsgID == clientMsgID
}

// awaitFor is how long a duplicate waits for the earlier send's message row to appear.
const awaitFor = 2 * time.Second

// awaitMessage reads the message at (conversation, seq), polling with backoff while it is not
// found, for up to awaitFor.
func (s *Store) awaitMessage(ctx context.Context, conversationID string, seq int64) (store.Message, error) {
	deadline := time.Now().Add(awaitFor)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		m, err := s.messageAt(ctx, conversationID, seq)
		if !errors.Is(err, store.ErrNotFound) || time.Now().Add(delay).After(deadline) {
			return m, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return store.Message{}, ctx.Err()
		case <-t.C:
		}
	}
}

// messageAt reads the message at (conversation, seq).
func (s *Store) messageAt(ctx context.Context, conversationID string, seq int64) (store.Message, error) {
	if conversationID == "" || seq <= 0 {
		return store.Message{}, store.ErrNotFound
	}
	var r messageRow
	err := s.query(ctx, q.messageGet).Bind(conversationID, bucketOf(uint64(seq), s.bucketSize), seq).GetRelease(&r)
	return r.message(), notFound(err)
}

// MessageByClientID implements store.Store: the claim, then the message it names, which must
// carry the same sender and client msg id (a claim whose message is not written is not found).
func (s *Store) MessageByClientID(ctx context.Context, senderID, clientMsgID string) (store.Message, error) {
	var c clientRow
	err := store.ErrNotFound
	if !anyEmpty(senderID, clientMsgID) {
		err = notFound(s.query(ctx, q.clientGet).Bind(senderID, clientMsgID).GetRelease(&c))
	}
	var m store.Message
	if err == nil {
		m, err = s.messageAt(ctx, c.ConversationID, c.Seq)
	}
	if err == nil && !sentAs(m, senderID, clientMsgID) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("scylla: message by client id %s/%q: %w", senderID, clientMsgID, err)
	}
	return m, nil
}

// MessageByID implements store.Store: the id index, then the message, which must carry the id.
func (s *Store) MessageByID(ctx context.Context, conversationID, messageID string) (store.Message, error) {
	var seq int64
	err := store.ErrNotFound
	if !anyEmpty(conversationID, messageID) {
		err = notFound(s.query(ctx, q.messageIDGet).Bind(conversationID, messageID).GetRelease(&seq))
	}
	var m store.Message
	if err == nil {
		m, err = s.messageAt(ctx, conversationID, seq)
	}
	if err == nil && m.ID != messageID {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("scylla: message %s/%s: %w", conversationID, messageID, err)
	}
	return m, nil
}

// Messages implements store.Store by walking the conversation's bucket index (see walk).
func (s *Store) Messages(ctx context.Context, conversationID string, p store.Page) ([]store.Message, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, fmt.Errorf("scylla: messages of %s: %w", conversationID, err)
	}
	pl, empty := planPage(p, s.bucketSize)
	if empty || conversationID == "" {
		return nil, nil
	}
	out, err := walk(ctx, source{s}, conversationID, pl)
	if err != nil {
		return nil, fmt.Errorf("scylla: messages of %s: %w", conversationID, err)
	}
	return out, nil
}

// source is the pageSource of a Store.
type source struct{ s *Store }

func (src source) buckets(ctx context.Context, conversationID string, pl plan) bucketIter {
	st, args := q.bucketsNewest, []any{conversationID}
	switch {
	case pl.bounded && pl.asc:
		st, args = q.bucketsAfter, append(args, pl.first)
	case pl.bounded:
		st, args = q.bucketsBefore, append(args, pl.first)
	}
	// A page needs at most one bucket per message (more only if a crash left an empty bucket
	// indexed), so fetch the index in pages of that many bucket numbers.
	// No prefetch: the walk usually stops long before the index ends.
	it := src.s.query(ctx, st).Bind(args...).PageSize(pl.limit).Prefetch(0).Iter()
	return &iterx{it: it}
}

func (src source) rows(ctx context.Context, conversationID string, bucket int64, pl plan, limit int) ([]store.Message, error) {
	var st stmt
	args := []any{conversationID, bucket}
	switch pl.seqOp {
	case "<":
		st, args = q.messagesBefore, append(args, pl.seqBound)
	case ">":
		st, args = q.messagesAfter, append(args, pl.seqBound)
	default:
		st = q.messagesNewest
	}
	var rows []messageRow
	if err := src.s.query(ctx, st).Bind(append(args, limit)...).SelectRelease(&rows); err != nil {
		return nil, err
	}
	out := make([]store.Message, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// iterx adapts a driver iterator of bucket numbers to bucketIter.
type iterx struct{ it *gocqlx.Iterx }

func (i *iterx) next() (int64, bool) {
	var b int64
	ok := i.it.Scan(&b)
	return b, ok
}

func (i *iterx) close() error { return i.it.Close() }
