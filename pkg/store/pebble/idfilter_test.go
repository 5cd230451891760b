package pebble

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// The filter never answers "absent" for a key it was given, across its layers and under
// concurrent adds, and answers "absent" for nearly every other key.
func TestIDFilterHasNoFalseAbsent(t *testing.T) {
	const first = 4096
	f := newIDFilter(first)
	f.ready.Store(true)
	const n = first*7 + 123 // layers of 4096, 8192 and 16384 keys, and a fourth
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				f.add(key(tagCmid, "u", fmt.Sprint(i)))
			}
		})
	}
	wg.Wait()
	if len(f.layers) != 4 {
		t.Fatalf("%d layers for %d keys, want 4", len(f.layers), n)
	}
	for i := range n {
		if k := key(tagCmid, "u", fmt.Sprint(i)); !f.mayHold(k) {
			t.Fatalf("key %d added, answered absent", i)
		}
	}
	maybe := 0
	const others = 20_000
	for i := range others {
		if f.mayHold(key(tagCmid, "v", fmt.Sprint(i))) {
			maybe++
		}
	}
	// Each layer answers "maybe" for about 1 % of absent keys.
	if maybe > others/20 {
		t.Fatalf("%d of %d absent keys answered maybe", maybe, others)
	}
	t.Logf("%d of %d absent keys answered maybe", maybe, others)

	if empty := newIDFilter(8); !empty.mayHold([]byte("x")) {
		t.Fatal("a filter whose scan has not ended answered absent")
	}
}

// A client id stored before the store was opened is found again, also by an insert that comes
// before the scan of the keys at open has ended, and one inserted since is found too.
func TestRepeatedClientIDIsFoundAfterAReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	msg := func(seq uint64, cmid string) store.Message {
		return store.Message{ConversationID: "c", Seq: seq, ID: fmt.Sprintf("m%d", seq), Kind: "msg", SenderID: "u1",
			ClientMsgID: cmid, Text: "t", SentAt: time.UnixMilli(1700000000000).UTC()}
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if _, inserted, err := s.InsertMessage(ctx, msg(uint64(i+1), fmt.Sprint("cm", i))); err != nil || !inserted {
			t.Fatalf("insert %d: %v, inserted %v", i, err, inserted)
		}
	}
	s = reopen(t, s, dir)
	seq := uint64(n)
	repeat := func(i int) {
		t.Helper()
		seq++
		stored, inserted, err := s.InsertMessage(ctx, msg(seq, fmt.Sprint("cm", i)))
		if err != nil {
			t.Fatal(err)
		}
		if inserted || stored.ClientMsgID != fmt.Sprint("cm", i) {
			t.Fatalf("client id cm%d again at seq %d: inserted %v, stored %+v", i, seq, inserted, stored)
		}
	}
	repeat(0) // most likely before the scan has ended
	<-s.scanned
	if !s.ids.ready.Load() {
		t.Fatal("the scan ended without making the filter ready")
	}
	for i := 0; i < n; i += 7 {
		repeat(i)
	}
	seq++
	if _, inserted, err := s.InsertMessage(ctx, msg(seq, "new")); err != nil || !inserted {
		t.Fatalf("a new client id: %v, inserted %v", err, inserted)
	}
	repeat2 := msg(seq+1, "new")
	if _, inserted, err := s.InsertMessage(ctx, repeat2); err != nil || inserted {
		t.Fatalf("the new client id again: %v, inserted %v", err, inserted)
	}
}
