package membership

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

func openStore(t *testing.T) store.Store {
	st := pebbletest.Open(t)
	if err := st.PutConversation(context.Background(), store.Conversation{ID: "g1", Kind: store.Group, Name: "old"}); err != nil {
		t.Fatal(err)
	}
	return st
}

func event(action string, users ...string) streams.ChatEvent {
	return streams.ChatEvent{V: streams.Version, Kind: streams.KindMember, ConversationID: "g1", MessageID: "m", SenderID: "owner",
		SentAt: time.Now().UnixMilli(), Member: &streams.MemberChange{Action: action, UserIDs: users, Name: "new"}}
}

func member(t *testing.T, st store.Store, user string) store.Member {
	t.Helper()
	m, err := st.Member(context.Background(), "g1", user)
	if err != nil {
		t.Fatalf("member %s: %v", user, err)
	}
	return m
}

func TestApplySetsWhatEachMemberSees(t *testing.T) {
	st, ctx := openStore(t), context.Background()
	for _, step := range []struct {
		seq uint64
		ev  streams.ChatEvent
	}{
		{10, event(streams.MemberCreated, "owner", "bob")},
		{15, event(streams.MemberAdded, "carol")},
		{20, event(streams.MemberRemoved, "bob")},
		{25, event(streams.MemberRenamed)},
	} {
		if err := Apply(ctx, st, step.seq, step.ev); err != nil {
			t.Fatal(err)
		}
	}
	owner, bob, carol := member(t, st, "owner"), member(t, st, "bob"), member(t, st, "carol")
	if owner.Role != RoleOwner || bob.Role != RoleMember {
		t.Fatalf("roles %q %q", owner.Role, bob.Role)
	}
	// Each sees the event that let them in; bob sees his removal and nothing after it.
	for _, c := range []struct {
		who  store.Member
		seq  uint64
		sees bool
	}{
		{owner, 10, true}, {owner, 9, false}, {carol, 15, true}, {carol, 14, false},
		{bob, 20, true}, {bob, 21, false}, {bob, 10, true},
	} {
		if c.who.Sees(c.seq) != c.sees {
			t.Errorf("%s sees %d: %v, want %v (%+v)", c.who.UserID, c.seq, !c.sees, c.sees, c.who)
		}
	}
	if conv, _ := st.Conversation(ctx, "g1"); conv.Name != "new" {
		t.Fatalf("rename not applied: %q", conv.Name)
	}
}

func TestApplyIgnoresEventsOlderThanTheRecord(t *testing.T) {
	st, ctx := openStore(t), context.Background()
	steps := []struct {
		seq uint64
		ev  streams.ChatEvent
	}{
		{10, event(streams.MemberAdded, "bob")},
		{20, event(streams.MemberRemoved, "bob")},
		{30, event(streams.MemberAdded, "bob")},
		{40, event(streams.MemberLeft, "bob")},
	}
	for _, s := range steps {
		if err := Apply(ctx, st, s.seq, s.ev); err != nil {
			t.Fatal(err)
		}
	}
	want := member(t, st, "bob")
	// Replays, in stream order and out of it, change nothing: a removed member stays removed.
	for round := 0; round < 2; round++ {
		for _, i := range []int{0, 1, 2, 3, 2, 0} {
			if err := Apply(ctx, st, steps[i].seq, steps[i].ev); err != nil {
				t.Fatal(err)
			}
			if got := member(t, st, "bob"); !reflect.DeepEqual(got, want) {
				t.Fatalf("replaying seq %d changed %+v into %+v", steps[i].seq, want, got)
			}
		}
	}
	if want.Active() || want.JoinedSeq != 29 || want.LeftSeq != 40 || !reflect.DeepEqual(want.Earlier, []store.Interval{{JoinedSeq: 9, LeftSeq: 20}}) {
		t.Fatalf("final state %+v, want joined at 10, left at 20, joined at 30 and left at 40", want)
	}
}

// Concurrent changes under a limit: JetStream's expected-last-subject-sequence serializes them,
// so a limit decided from the current members holds.
func TestChangeSerializesConcurrentWriters(t *testing.T) {
	bus, st, ctx := natsxtest.Start(t), openStore(t), context.Background()
	if _, err := Change(ctx, bus.JS, st, "g1", "owner", func([]store.Member) (streams.MemberChange, error) {
		return streams.MemberChange{Action: streams.MemberCreated, UserIDs: []string{"owner"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	const limit, writers = 6, 12
	full := errors.New("full")
	var wg sync.WaitGroup
	var mu sync.Mutex
	added, refused := 0, 0
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			_, err := Change(ctx, bus.JS, st, "g1", "owner", func(ms []store.Member) (streams.MemberChange, error) {
				if len(Active(ms)) >= limit {
					return streams.MemberChange{}, full
				}
				return streams.MemberChange{Action: streams.MemberAdded, UserIDs: []string{user}}, nil
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				added++
			case errors.Is(err, full) || errors.Is(err, ErrConflict):
				refused++
			default:
				t.Errorf("change: %v", err)
			}
		}()
	}
	wg.Wait()
	ms, err := st.Members(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(Active(ms)); n > limit || added != n-1 || added+refused != writers {
		t.Fatalf("%d members (limit %d), %d added, %d refused", n, limit, added, refused)
	}
}
