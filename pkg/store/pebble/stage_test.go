package pebble

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

func stagedMsg(conv string, seq uint64, cmid string) store.Message {
	return store.Message{ConversationID: conv, Seq: seq, ID: fmt.Sprintf("m%d", seq), Kind: "msg", SenderID: "u",
		ClientMsgID: cmid, Text: fmt.Sprintf("text %d", seq), SentAt: time.UnixMilli(1700000000000 + int64(seq)).UTC()}
}

// TestStagedMessagesAreWrittenBySync: what InsertMessageUnsynced takes is read by nobody until
// Sync, and then all of it is there, with its id and client-id entries.
func TestStagedMessagesAreWrittenBySync(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	for seq := uint64(1); seq <= 5; seq++ {
		if _, inserted, err := s.InsertMessageUnsynced(ctx, stagedMsg("c", seq, fmt.Sprintf("k%d", seq))); err != nil || !inserted {
			t.Fatalf("stage %d: inserted %v, %v", seq, inserted, err)
		}
	}
	if got, err := s.Messages(ctx, "c", store.Page{}); err != nil || len(got) != 0 {
		t.Fatalf("before Sync: %d messages, %v; want none", len(got), err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(ctx, "c", store.Page{})
	if err != nil || len(got) != 5 {
		t.Fatalf("after Sync: %d messages, %v; want 5", len(got), err)
	}
	for i, m := range got { // newest first
		if want := stagedMsg("c", uint64(5-i), ""); m.Seq != want.Seq || m.Text != want.Text {
			t.Fatalf("message %d = %+v, want seq %d %q", i, m, want.Seq, want.Text)
		}
	}
	if m, err := s.MessageByID(ctx, "c", "m3"); err != nil || m.Seq != 3 {
		t.Fatalf("by id: %+v, %v", m, err)
	}
	if m, err := s.MessageByClientID(ctx, "u", "k4"); err != nil || m.Seq != 4 {
		t.Fatalf("by client id: %+v, %v", m, err)
	}
	// Redelivered after Sync: found in the database, not written again.
	if m, inserted, err := s.InsertMessageUnsynced(ctx, stagedMsg("c", 2, "k2")); err != nil || inserted || m.Seq != 2 {
		t.Fatalf("redelivery: %+v inserted %v, %v", m, inserted, err)
	}
}

// TestAStagedRepeatIsAnsweredFromTheStage: a second event with a staged message's client id (a
// send repeated after the duplicate window) is answered with the staged message, and a slot
// staged twice keeps the first; Sync writes one message each.
func TestAStagedRepeatIsAnsweredFromTheStage(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	first := stagedMsg("c", 1, "k")
	if _, _, err := s.InsertMessageUnsynced(ctx, first); err != nil {
		t.Fatal(err)
	}
	if m, inserted, err := s.InsertMessageUnsynced(ctx, stagedMsg("c", 2, "k")); err != nil || inserted || m.Seq != 1 {
		t.Fatalf("repeat of a staged client id: %+v inserted %v, %v; want seq 1, not inserted", m, inserted, err)
	}
	other := stagedMsg("c", 1, "other")
	other.Text = "not this"
	if m, inserted, err := s.InsertMessageUnsynced(ctx, other); err != nil || inserted || m.Text != first.Text {
		t.Fatalf("a staged slot again: %+v inserted %v, %v; want the first", m, inserted, err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(ctx, "c", store.Page{})
	if err != nil || len(got) != 1 || got[0].Text != first.Text {
		t.Fatalf("stored %+v, %v; want the first message alone", got, err)
	}
}

// TestSyncKeepsWhatAnotherWriterStoredFirst: a message another writer inserts while the same
// slot or client id is staged (the API applies a membership event at once; a shared store's
// other persisters) is the one kept: Sync checks the staged messages again and drops those.
func TestSyncKeepsWhatAnotherWriterStoredFirst(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	for _, m := range []store.Message{stagedMsg("c", 1, "a"), stagedMsg("c", 2, "b"), stagedMsg("c", 3, "")} {
		if _, _, err := s.InsertMessageUnsynced(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	sameID := stagedMsg("c", 7, "a") // the same send, stored first at another seq
	sameSlot := stagedMsg("c", 2, "")
	sameSlot.Text = "stored first"
	for _, m := range []store.Message{sameID, sameSlot} {
		if _, inserted, err := s.InsertMessage(ctx, m); err != nil || !inserted {
			t.Fatalf("direct insert %d: inserted %v, %v", m.Seq, inserted, err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(ctx, "c", store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for _, m := range got {
		seqs = append(seqs, fmt.Sprintf("%d:%s", m.Seq, m.Text))
	}
	if want := "7:text 7,3:text 3,2:stored first"; strings.Join(seqs, ",") != want {
		t.Fatalf("stored %v, want %s", seqs, want)
	}
	if m, err := s.MessageByClientID(ctx, "u", "a"); err != nil || m.Seq != 7 {
		t.Fatalf("client id a: %+v, %v; want seq 7", m, err)
	}
}

// TestARevisionSeesAStagedMessage: an edit of a message still staged revises it (the persister
// may stage a message and its edit in one chunk).
func TestARevisionSeesAStagedMessage(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	if _, _, err := s.InsertMessageUnsynced(ctx, stagedMsg("c", 1, "k")); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1700000009000).UTC()
	m, err := s.ReviseMessage(ctx, "c", 1, store.Revision{Kind: "edit", Seq: 2, At: at, Text: "edited"})
	if err != nil || m.Text != "edited" {
		t.Fatalf("revise a staged message: %+v, %v", m, err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MessageByID(ctx, "c", "m1"); err != nil || got.Text != "edited" {
		t.Fatalf("after Sync: %+v, %v; want the edit kept", got, err)
	}
}

// TestAFailedSyncKeepsTheStage: what could not be written stays staged for the next Sync.
func TestAFailedSyncKeepsTheStage(t *testing.T) {
	s := open(t)
	if _, _, err := s.InsertMessageUnsynced(t.Context(), stagedMsg("c", 1, "k")); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Sync(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a done context: %v", err)
	}
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Messages(t.Context(), "c", store.Page{}); err != nil || len(got) != 1 {
		t.Fatalf("stored %d, %v; want the staged message", len(got), err)
	}
}

// BenchmarkInsertChunk: a chunk of 512 messages in 100 conversations (as a 1:1 load gathers
// them), written one batch a message (InsertMessage's way, unsynced) or staged and written by
// one Sync in key order. ns/op is per message.
func BenchmarkInsertChunk(b *testing.B) {
	const chunk = 512
	msgs := func(n int) []store.Message {
		ms := make([]store.Message, n)
		text := strings.Repeat("x", 100)
		for i := range ms {
			c := i % 100
			ms[i] = store.Message{ConversationID: fmt.Sprintf("d:01JBENCHUSER%04d:01JBENCHUSER%04d", c, c+100), Seq: uint64(i + 1),
				ID: fmt.Sprintf("01JBENCHMESSAGE%011d", i), Kind: "msg", SenderID: fmt.Sprintf("01JBENCHUSER%04d", c),
				ClientMsgID: fmt.Sprintf("bench-%d", i), Text: text, SentAt: time.UnixMilli(1700000000000).UTC()}
		}
		return ms
	}
	b.Run("batch-a-message", func(b *testing.B) {
		s := open(b)
		ms := msgs(b.N)
		b.ResetTimer()
		for i, m := range ms {
			if _, _, err := s.insertMessage(m); err != nil {
				b.Fatal(err)
			}
			if (i+1)%chunk == 0 {
				if err := s.Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("staged-chunk", func(b *testing.B) {
		s := open(b)
		ms := msgs(b.N)
		b.ResetTimer()
		for i, m := range ms {
			if _, _, err := s.InsertMessageUnsynced(b.Context(), m); err != nil {
				b.Fatal(err)
			}
			if (i+1)%chunk == 0 {
				if err := s.Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
