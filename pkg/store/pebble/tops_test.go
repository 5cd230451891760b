package pebble

import (
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// Inserting a seq that is already stored is a repeat whatever tops knows: after a reopen (tops
// empty), for a message inserted late below the top, and for a conversation tops forgot.
func TestRepeatIsFoundWhateverTopsKnows(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(conv string, seq uint64, text string) store.Message {
		return store.Message{ConversationID: conv, Seq: seq, ID: fmt.Sprintf("m%d", seq), Kind: "msg", SenderID: "u1",
			Text: text, SentAt: time.UnixMilli(1700000000000).UTC()}
	}
	insert := func(s *Store, m store.Message, wantInserted bool) {
		t.Helper()
		stored, inserted, err := s.InsertMessage(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if inserted != wantInserted || (!inserted && stored.Text == m.Text) {
			t.Fatalf("insert %s/%d %q: inserted=%v, stored %q; want inserted=%v", m.ConversationID, m.Seq, m.Text, inserted, stored.Text, wantInserted)
		}
	}
	insert(s, msg("c1", 5, "first"), true)
	insert(s, msg("c1", 5, "repeat"), false) // the top is 5
	insert(s, msg("c1", 3, "late"), true)    // below the top, free
	insert(s, msg("c1", 3, "repeat"), false)
	insert(s, msg("c10", 9, "other"), true) // a conversation whose id extends c1's
	s = reopen(t, s, dir)
	insert(s, msg("c1", 5, "repeat after reopen"), false)
	insert(s, msg("c1", 3, "repeat after reopen"), false)
	insert(s, msg("c1", 6, "next"), true)
	for i := range maxTops { // a full tops forgets conversations at random
		s.tops.raise(fmt.Sprintf("x%d", i), 1)
	}
	delete(s.tops.m, "c1") // as if chosen
	delete(s.tops.m, "c10")
	insert(s, msg("c1", 6, "repeat after forgetting"), false)
	insert(s, msg("c10", 9, "repeat after forgetting"), false)
	if got := len(s.tops.m); got > maxTops {
		t.Fatalf("tops holds %d conversations, more than %d", got, maxTops)
	}
}
