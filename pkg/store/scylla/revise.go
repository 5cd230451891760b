package scylla

import (
	"context"
	"fmt"

	"github.com/natter-chat/natter/pkg/store"
)

// reviseAttempts bounds ReviseMessage's loop. A conditional write of a revision fails only when
// another revision of the same message was applied between the read and the write, and the
// rules make the next round a no-op or one more write, so a few rounds are enough even when
// many writers revise one message at once.
const reviseAttempts = 8

// ReviseMessage implements store.Reviser as a compare-and-set loop, the counterpart of Pebble's
// read-modify-write under its stripe lock:
//
//  1. read the message with a serial read (every accepted conditional write is seen);
//  2. if it is not a text message, or store.Revise says r changes nothing, return it: the rules
//     are monotone (a delete stays, revised_seq only grows, hides only accumulate), so what is a
//     no-op now stays one;
//  3. else write r with the one conditional statement of its kind (see buildStatements), whose
//     condition is r's rule, and go back to 1: the next read returns the message with r applied
//     (and whatever else was applied meanwhile).
//
// Every write is a lightweight transaction, like every other write of the messages table, so a
// revision racing an insert, another revision or a driver retry of itself is applied once or
// not at all, and in any order the result is the one store.Revise gives.
func (s *Store) ReviseMessage(ctx context.Context, conversationID string, seq uint64, r store.Revision) (store.Message, error) {
	m, err := s.reviseMessage(ctx, conversationID, seq, r)
	if err != nil {
		return store.Message{}, fmt.Errorf("scylla: revise message %s/%d: %w", conversationID, seq, err)
	}
	return m, nil
}

func (s *Store) reviseMessage(ctx context.Context, conversationID string, seq uint64, r store.Revision) (store.Message, error) {
	if conversationID == "" || seq == 0 || seq > maxSeq {
		return store.Message{}, store.ErrNotFound
	}
	if r.Seq > maxSeq {
		return store.Message{}, fmt.Errorf("revision seq %d above %d", r.Seq, uint64(maxSeq))
	}
	r.At = fromMS(toMS(r.At)) // as stored, so that Revise's result and the row agree
	for range reviseAttempts {
		cur, err := s.messageAtSerial(ctx, conversationID, seq)
		if err != nil {
			return store.Message{}, err
		}
		if cur.Kind != "msg" {
			return cur, nil
		}
		if _, changed := store.Revise(cur, r); !changed {
			return cur, nil
		}
		st, args, err := revisionWrite(cur, r)
		if err != nil {
			return store.Message{}, err
		}
		args["conversation_id"], args["bucket"], args["seq"] = conversationID, bucketOf(seq, s.bucketSize), int64(seq)
		if _, err := s.query(ctx, st).BindMap(args).ExecCASRelease(); err != nil {
			return store.Message{}, fmt.Errorf("write %s: %w", r.Kind, err)
		}
	}
	return store.Message{}, fmt.Errorf("%s still contended after %d attempts", r.Kind, reviseAttempts)
}

// revisionWrite is the conditional statement that applies r to cur, and its values (the key is
// added by the caller).
func revisionWrite(cur store.Message, r store.Revision) (stmt, map[string]any, error) {
	switch r.Kind {
	case "edit":
		st := q.messageEditIf
		if cur.RevisedSeq == 0 { // never edited: revised_seq is null, which "<" does not match
			st = q.messageEditFirstIf
		}
		return st, map[string]any{"body": r.Text, "edited_at": toMS(r.At), "revised_seq": int64(r.Seq)}, nil
	case "delete":
		return q.messageDeleteIf, map[string]any{"body": "", "deleted_at": toMS(r.At)}, nil
	case "hide":
		return q.messageHideIf, map[string]any{"hidden_for": []string{r.UserID}}, nil
	}
	return stmt{}, nil, fmt.Errorf("unknown revision kind %q", r.Kind) // Revise changes nothing for it: unreachable
}

// messageAtSerial reads the message at (conversation, seq) with the serial consistency, so that
// it sees every conditional write accepted so far, even one not yet committed to a quorum.
func (s *Store) messageAtSerial(ctx context.Context, conversationID string, seq uint64) (store.Message, error) {
	var r messageRow
	qx := s.query(ctx, q.messageGet)
	qx.Consistency(s.serial)
	err := qx.Bind(conversationID, bucketOf(seq, s.bucketSize), int64(seq)).GetRelease(&r)
	if err != nil {
		return store.Message{}, fmt.Errorf("read: %w", notFound(err))
	}
	return r.message(), nil
}
