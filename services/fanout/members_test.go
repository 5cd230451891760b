package fanout

import (
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
)

func TestMemberCacheForgetsOnChangeGapAndAge(t *testing.T) {
	ctx := t.Context()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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
