package pebble

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

// Member, read concurrently with PutMember, never answers with a record older than the last
// PutMember that returned: a read that raced a write must not be kept.
func TestMemberIsNeverOlderThanTheLastWrite(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	put := func(seq uint64) {
		t.Helper()
		if err := s.PutMember(ctx, store.Member{ConversationID: "c1", UserID: "u1", Role: "member", ChangedSeq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	put(1)

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if _, err := s.Member(ctx, "c1", "u1"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer stop.Store(true)
	for seq := uint64(2); seq <= 100; seq++ {
		put(seq)
		m, err := s.Member(ctx, "c1", "u1")
		if err != nil {
			t.Fatal(err)
		}
		if m.ChangedSeq != seq {
			t.Fatalf("after writing seq %d, Member answers seq %d", seq, m.ChangedSeq)
		}
		if c, ok := s.CachedMember("c1", "u1"); ok && c.ChangedSeq != seq {
			t.Fatalf("after writing seq %d, CachedMember answers seq %d", seq, c.ChangedSeq)
		}
	}
}

// CachedMember answers what Member read, until the record is written again.
func TestCachedMemberHoldsWhatMemberRead(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	put := func(m store.Member) {
		t.Helper()
		if err := s.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	put(store.Member{ConversationID: "c1", UserID: "u1", Role: "member", JoinedSeq: 3, ChangedSeq: 3})
	if _, ok := s.CachedMember("c1", "u1"); ok {
		t.Fatal("CachedMember answers before anything was read")
	}
	read, err := s.Member(ctx, "c1", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.CachedMember("c1", "u1"); !ok || got.ChangedSeq != read.ChangedSeq || !got.Active() {
		t.Fatalf("after Member: CachedMember = %+v, %v; want %+v", got, ok, read)
	}
	put(store.Member{ConversationID: "c1", UserID: "u1", Role: "member", JoinedSeq: 3, LeftSeq: 8, ChangedSeq: 8})
	if got, ok := s.CachedMember("c1", "u1"); ok {
		t.Fatalf("after the member left: CachedMember still answers %+v", got)
	}
}

// A kept record is the caller's: changing what Member returned changes nothing kept.
func TestMemberAnswersACopy(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	want := store.Member{ConversationID: "c1", UserID: "u1", Role: "member", JoinedSeq: 9,
		Earlier: []store.Interval{{JoinedSeq: 1, LeftSeq: 4}}}
	if err := s.PutMember(ctx, want); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m, err := s.Member(ctx, "c1", "u1")
		if err != nil {
			t.Fatal(err)
		}
		if m.JoinedSeq != 9 || len(m.Earlier) != 1 || m.Earlier[0] != want.Earlier[0] {
			t.Fatalf("Member = %+v, want %+v", m, want)
		}
		m.Earlier[0].LeftSeq = 99
	}
	if _, err := s.Member(ctx, "c1", "u2"); err == nil {
		t.Fatal("a user never added is a member")
	}
}
