package pebble

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

func TestPositionsOnlyRise(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	if _, ok, err := s.Position(ctx, "CHAT"); err != nil || ok {
		t.Fatalf("fresh store: ok=%v err=%v, want nothing recorded", ok, err)
	}
	for _, seq := range []uint64{7, 3, 9, 9} {
		if err := s.RecordPosition(ctx, "CHAT", seq); err != nil {
			t.Fatal(err)
		}
	}
	if p, ok, err := s.Position(ctx, "CHAT"); err != nil || !ok || p != 9 {
		t.Fatalf("position = %d %v %v, want 9", p, ok, err)
	}
	if _, ok, _ := s.Position(ctx, "STATE"); ok {
		t.Fatal("a position of another stream is recorded")
	}
	// A position is not a record: the store is still empty.
	if empty, err := s.Empty(ctx); err != nil || !empty {
		t.Fatalf("empty = %v %v, want true", empty, err)
	}
	if err := s.PutDevice(ctx, store.Device{UserID: "u", DeviceID: "d", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if empty, err := s.Empty(ctx); err != nil || empty {
		t.Fatalf("empty = %v %v, want false", empty, err)
	}
}

func TestCheckpointHoldsEveryWriteBeforeIt(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	m := store.Message{ConversationID: "c", Seq: 1, ID: "m1", Kind: "msg", SenderID: "u", Text: "hello", SentAt: time.UnixMilli(1700000000000).UTC()}
	// Written but not synced, on purpose: the checkpoint flushes the WAL itself.
	if _, _, err := s.InsertMessageUnsynced(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.writeStaged(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPosition(ctx, "CHAT", 1); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if err := s.Checkpoint(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx, dir); err == nil {
		t.Fatal("a checkpoint over an existing directory succeeded")
	}
	// Written after the checkpoint: not in it.
	m2 := m
	m2.Seq, m2.ID = 2, "m2"
	if _, _, err := s.InsertMessage(ctx, m2); err != nil {
		t.Fatal(err)
	}
	ck, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	got, err := ck.Messages(ctx, "c", store.Page{})
	if err != nil || len(got) != 1 || got[0].Text != "hello" {
		t.Fatalf("checkpoint messages = %+v %v, want the one before it", got, err)
	}
	if p, ok, err := ck.Position(ctx, "CHAT"); err != nil || !ok || p != 1 {
		t.Fatalf("checkpoint position = %d %v %v, want 1", p, ok, err)
	}
}
