package storetest

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

// reviser returns s as a store.Reviser, or skips t for a store that cannot revise messages.
func reviser(t *testing.T, s store.Store) store.Reviser {
	t.Helper()
	r, ok := s.(store.Reviser)
	if !ok {
		t.Skip("the store does not implement store.Reviser")
	}
	return r
}

func revise(t *testing.T, r store.Reviser, conv string, seq uint64, rev store.Revision) store.Message {
	t.Helper()
	m, err := r.ReviseMessage(t.Context(), conv, seq, rev)
	check(t, err, "revise %s/%d with %+v", conv, seq, rev)
	return m
}

// stored reads the message at (conv, seq) back through a page.
func stored(t *testing.T, s store.Store, conv string, seq uint64) store.Message {
	t.Helper()
	page, err := s.Messages(t.Context(), conv, store.Page{After: seq - 1, Oldest: true, Limit: 1})
	check(t, err, "read %s/%d", conv, seq)
	if len(page) != 1 || page[0].Seq != seq {
		t.Fatalf("read %s/%d: got seqs %v", conv, seq, seqs(page))
	}
	return page[0]
}

var revisionsTests = []test{
	{"EditThenDelete", func(t *testing.T, s store.Store) {
		r := reviser(t, s)
		m := msg("c1", 5, "u-alice", "k1")
		insert(t, s, m, m, true)
		edited := m
		edited.Text, edited.EditedAt, edited.RevisedSeq = "fixed", at(9), 9
		wantMessage(t, revise(t, r, "c1", 5, store.Revision{Kind: "edit", Seq: 9, Text: "fixed", At: at(9)}), edited, "edit returned")
		wantMessage(t, stored(t, s, "c1", 5), edited, "edited message")
		byID, err := s.MessageByID(t.Context(), "c1", m.ID)
		check(t, err, "by id")
		wantMessage(t, byID, edited, "edited message by id")
		// An older edit (applied late) changes nothing; so does the same edit again.
		wantMessage(t, revise(t, r, "c1", 5, store.Revision{Kind: "edit", Seq: 7, Text: "older", At: at(7)}), edited, "older edit")
		wantMessage(t, revise(t, r, "c1", 5, store.Revision{Kind: "edit", Seq: 9, Text: "fixed", At: at(9)}), edited, "same edit")

		deleted := edited
		deleted.Text, deleted.DeletedAt = "", at(12)
		wantMessage(t, revise(t, r, "c1", 5, store.Revision{Kind: "delete", Seq: 12, At: at(12)}), deleted, "delete returned")
		wantMessage(t, stored(t, s, "c1", 5), deleted, "deleted message")
		// A delete is final: a later edit and another delete change nothing.
		wantMessage(t, revise(t, r, "c1", 5, store.Revision{Kind: "edit", Seq: 20, Text: "back", At: at(20)}), deleted, "edit after delete")
		wantMessage(t, revise(t, r, "c1", 5, store.Revision{Kind: "delete", Seq: 21, At: at(21)}), deleted, "second delete")
		byClient, err := s.MessageByClientID(t.Context(), "u-alice", "k1")
		check(t, err, "by client id")
		wantMessage(t, byClient, deleted, "deleted message by client id")
	}},
	{"Hide", func(t *testing.T, s store.Store) {
		r := reviser(t, s)
		m := msg("c1", 5, "u-alice", "k1")
		insert(t, s, m, m, true)
		revise(t, r, "c1", 5, store.Revision{Kind: "hide", Seq: 6, UserID: "u-carol", At: at(6)})
		revise(t, r, "c1", 5, store.Revision{Kind: "hide", Seq: 7, UserID: "u-bob", At: at(7)})
		revise(t, r, "c1", 5, store.Revision{Kind: "hide", Seq: 8, UserID: "u-carol", At: at(8)})
		want := m
		want.HiddenFor = []string{"u-bob", "u-carol"}
		got := stored(t, s, "c1", 5)
		wantMessage(t, got, want, "hidden message")
		if !got.HiddenTo("u-bob") || got.HiddenTo("u-alice") {
			t.Errorf("HiddenTo wrong for %v", got.HiddenFor)
		}
	}},
	{"MissingAndNotAMessage", func(t *testing.T, s store.Store) {
		r := reviser(t, s)
		_, err := r.ReviseMessage(t.Context(), "c1", 5, store.Revision{Kind: "delete", Seq: 6, At: at(6)})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revise a missing message: %v, want ErrNotFound", err)
		}
		member := store.Message{ConversationID: "c1", Seq: 3, ID: "m3", Kind: "member", SenderID: "u-alice",
			Member: []byte(`{"action":"created"}`), SentAt: at(3)}
		insert(t, s, member, member, true)
		wantMessage(t, revise(t, r, "c1", 3, store.Revision{Kind: "delete", Seq: 6, At: at(6)}), member, "delete of a member event")
		entry := store.Message{ConversationID: "c1", Seq: 6, ID: "m6", Kind: "edit", SenderID: "u-alice",
			ClientMsgID: "e1", Target: 3, TargetID: "m3", SentAt: at(6)}
		insert(t, s, entry, entry, true)
		wantMessage(t, stored(t, s, "c1", 6), entry, "an edit entry keeps its target")
	}},
	{"AnyOrderSameResult", func(t *testing.T, s store.Store) {
		// Edits and a delete applied concurrently, in random order and twice each, end where
		// applying them in seq order ends: the delete wins.
		r := reviser(t, s)
		m := msg("c1", 1, "u-alice", "k1")
		insert(t, s, m, m, true)
		m2 := msg("c1", 2, "u-alice", "k2")
		insert(t, s, m2, m2, true)
		var revs []store.Revision
		for seq := uint64(10); seq < 40; seq++ {
			revs = append(revs, store.Revision{Kind: "edit", Seq: seq, Text: "v" + string(rune('a'+seq-10)), At: at(seq)})
		}
		revs = append(revs, store.Revision{Kind: "delete", Seq: 25, At: at(25)}, store.Revision{Kind: "hide", Seq: 26, UserID: "u-bob", At: at(26)})
		all := append(append([]store.Revision(nil), revs...), revs...)
		rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		var wg sync.WaitGroup
		for _, rev := range all {
			wg.Go(func() {
				for _, seq := range []uint64{1, 2} {
					if _, err := r.ReviseMessage(t.Context(), "c1", seq, rev); err != nil {
						t.Errorf("revise %d: %v", seq, err)
					}
				}
			})
		}
		wg.Wait()
		for _, seq := range []uint64{1, 2} {
			got := stored(t, s, "c1", seq)
			if !got.Deleted() || got.Text != "" || !got.DeletedAt.Equal(ms(at(25))) || len(got.HiddenFor) != 1 {
				t.Errorf("message %d after the race: %+v", seq, got)
			}
		}
	}},
}
