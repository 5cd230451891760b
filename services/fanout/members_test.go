package fanout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
)

func TestMemberCacheForgetsOnChangeGapAndAge(t *testing.T) {
	ctx := t.Context()
	st := pebbletest.Open(t)
	now := time.UnixMilli(1700000000000)
	c := memberCache{now: func() time.Time { return now }}
	join := func(user string) {
		t.Helper()
		if err := st.PutMember(ctx, store.Member{ConversationID: "c1", UserID: user, Role: "member", JoinedSeq: 1}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(step string, n int) {
		t.Helper()
		members, err := c.get(ctx, st, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if len(members) != n {
			t.Fatalf("%s: %d members, want %d", step, len(members), n)
		}
	}
	join("u1")
	expect("first read", 1)
	join("u2")
	expect("cached", 1)
	c.forget("c1")
	expect("after forget", 2)
	join("u3")
	c.clear()
	expect("after clear", 3)
	join("u4")
	now = now.Add(membersTTL)
	expect("after the TTL", 4)
	for i := range membersMax {
		if _, err := c.get(ctx, st, fmt.Sprintf("x%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > membersMax {
		t.Fatalf("cache holds %d conversations, more than %d", len(c.m), membersMax)
	}
}

// Events this partition did not route (another instance held it) may have changed membership:
// a gap forgets every conversation's members.
func TestMemberCacheIsForgottenAtAGap(t *testing.T) {
	e := newEnv(t)
	f, err := New(DefaultConfig(), Deps{Log: zap.NewNop(), NC: e.nc, JS: e.js, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	part := &partition{f: f, next: 5, sent: map[string]uint64{}, members: memberCache{now: time.Now}}
	e.putMember(t, "c1", "u1", 0, 0)
	count := func() int {
		t.Helper()
		members, err := part.members.get(e.ctx, e.store, "c1")
		if err != nil {
			t.Fatal(err)
		}
		return len(members)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d members, want 1", n)
	}
	e.putMember(t, "c1", "u2", 0, 0) // as a member event routed by another instance would
	if err := part.inOrder(e.ctx, 5); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("in order: %d members, want the cached 1", n)
	}
	if err := part.inOrder(e.ctx, 9); err != nil { // 5..8 were handled elsewhere
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("after a gap: %d members, want 2 read again", n)
	}
}
