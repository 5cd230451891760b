package membership

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// TestAllowedMatrix: role x action -> allowed or forbidden, for every pair.
func TestAllowedMatrix(t *testing.T) {
	owner := store.Member{UserID: "o", Role: RoleOwner}
	admin := store.Member{UserID: "a", Role: RoleAdmin}
	admin2 := store.Member{UserID: "a2", Role: RoleAdmin}
	member := store.Member{UserID: "m", Role: RoleMember}
	member2 := store.Member{UserID: "m2", Role: RoleMember}
	former := store.Member{UserID: "f", Role: RoleMember, JoinedSeq: 1, LeftSeq: 5}
	invitee := store.Member{UserID: "i", Role: RoleMember, JoinedSeq: 7, LeftSeq: 7, InvitedSeq: 7}
	actors := map[string]store.Member{"owner": owner, "admin": admin, "member": member, "former": former, "invitee": invitee}
	// Acts on the group itself (the target is not looked at).
	for act, want := range map[string]map[string]bool{
		ActLeave:  {"owner": true, "admin": true, "member": true},
		ActRename: {"owner": true, "admin": true},
		ActInvite: {"owner": true, "admin": true},
		ActDelete: {"owner": true},
	} {
		for name, actor := range actors {
			if got := Allowed(act, actor, store.Member{}); got != want[name] {
				t.Errorf("%s may %s: %v, want %v", name, act, got, want[name])
			}
		}
	}
	// Acts on another member: actor x target.
	targets := map[string]store.Member{"owner": owner, "admin": admin2, "member": member2, "former": former, "invitee": invitee, "self": {}}
	for act, want := range map[string]map[[2]string]bool{
		ActRemove:   {{"owner", "admin"}: true, {"owner", "member"}: true, {"admin", "member"}: true},
		ActPromote:  {{"owner", "member"}: true, {"admin", "member"}: true},
		ActDemote:   {{"owner", "admin"}: true},
		ActTransfer: {{"owner", "admin"}: true, {"owner", "member"}: true},
	} {
		for an, actor := range actors {
			for tn, target := range targets {
				if tn == "self" {
					target = actor
				}
				if got := Allowed(act, actor, target); got != want[[2]string{an, tn}] {
					t.Errorf("%s may %s %s: %v, want %v", an, act, tn, got, want[[2]string{an, tn}])
				}
			}
		}
	}
	if !IsAdmin(owner) || !IsAdmin(admin) || IsAdmin(member) || IsAdmin(store.Member{Role: RoleAdmin, LeftSeq: 3}) {
		t.Error("IsAdmin: the owner and current admins only")
	}
}

func TestSuccessorIsTheLongestStandingAdminElseMember(t *testing.T) {
	ms := []store.Member{
		{UserID: "owner", Role: RoleOwner, JoinedSeq: 0},
		{UserID: "m-old", Role: RoleMember, JoinedSeq: 0},
		{UserID: "a-new", Role: RoleAdmin, JoinedSeq: 30},
		{UserID: "a-old", Role: RoleAdmin, JoinedSeq: 20, Earlier: []store.Interval{{JoinedSeq: 1, LeftSeq: 2}}},
		{UserID: "a-gone", Role: RoleAdmin, JoinedSeq: 3, LeftSeq: 9},
	}
	if got := Successor(ms, "owner"); got != "a-old" {
		t.Fatalf("successor %q, want the longest-standing admin a-old", got)
	}
	ms[2].Role, ms[3].Role = RoleMember, RoleMember
	if got := Successor(ms, "owner"); got != "m-old" {
		t.Fatalf("successor %q, want the longest-standing member m-old", got)
	}
	if got := Successor(ms[:1], "owner"); got != "" {
		t.Fatalf("successor %q of a group left empty", got)
	}
}

// apply applies events at the given seqs, in order.
func apply(t *testing.T, st store.Store, steps ...step) {
	t.Helper()
	for _, s := range steps {
		if err := Apply(context.Background(), st, s.seq, s.ev); err != nil {
			t.Fatal(err)
		}
	}
}

type step struct {
	seq uint64
	ev  streams.ChatEvent
}

func by(sender, action string, users ...string) streams.ChatEvent {
	return streams.ChatEvent{V: streams.Version, Kind: streams.KindMember, ConversationID: "g1", MessageID: "m", SenderID: sender,
		SentAt: time.Now().UnixMilli(), Member: &streams.MemberChange{Action: action, UserIDs: users}}
}

func withOwner(ev streams.ChatEvent, owner string) streams.ChatEvent {
	c := *ev.Member
	c.Owner = owner
	ev.Member = &c
	return ev
}

func TestRolesOwnershipAndSuccession(t *testing.T) {
	st := openStore(t)
	steps := []step{
		{10, by("alice", streams.MemberCreated, "alice", "bob", "carol")},
		{12, by("alice", streams.MemberPromoted, "bob")},
		{14, by("alice", streams.MemberOwnerChanged)},
		{16, by("bob", streams.MemberPromoted, "carol")},
		{18, by("bob", streams.MemberDemoted, "carol")},
		{20, withOwner(by("bob", streams.MemberLeft, "bob"), "alice")},
	}
	steps[2].ev = withOwner(steps[2].ev, "bob")
	apply(t, st, steps[:3]...)
	if a, b := member(t, st, "alice"), member(t, st, "bob"); a.Role != RoleAdmin || b.Role != RoleOwner {
		t.Fatalf("after the hand-over: alice %q, bob %q", a.Role, b.Role)
	}
	apply(t, st, steps[3:]...)
	a, b, c := member(t, st, "alice"), member(t, st, "bob"), member(t, st, "carol")
	if a.Role != RoleOwner || b.Active() || c.Role != RoleMember {
		t.Fatalf("after the owner left: alice %q, bob %+v, carol %q", a.Role, b, c.Role)
	}
	// Replaying everything changes nothing.
	want := [3]store.Member{a, b, c}
	apply(t, st, steps...)
	if got := [3]store.Member{member(t, st, "alice"), member(t, st, "bob"), member(t, st, "carol")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay changed\n%+v\ninto\n%+v", want, got)
	}
}

func TestInvitationAcceptDeclineAndRejoinIntervals(t *testing.T) {
	st := openStore(t)
	steps := []step{
		{10, by("alice", streams.MemberCreated, "alice")},
		{12, by("alice", streams.MemberInvited, "bob", "carol")},
		{15, by("bob", streams.MemberAccepted, "bob")},
		{16, by("carol", streams.MemberDeclined, "carol")},
		{17, by("carol", streams.MemberAccepted, "carol")}, // no invitation any more: nothing
		{20, by("alice", streams.MemberRemoved, "bob")},
		{25, by("alice", streams.MemberInvited, "bob")},
		{30, by("bob", streams.MemberAccepted, "bob")},
	}
	apply(t, st, steps[:2]...)
	bob := member(t, st, "bob")
	if bob.Active() || !bob.Invited() || bob.InvitedBy != "alice" || bob.Sees(12) || bob.Sees(13) {
		t.Fatalf("invitee %+v: must be invited, not a member, and see nothing", bob)
	}
	apply(t, st, steps[2:]...)
	bob, carol := member(t, st, "bob"), member(t, st, "carol")
	if carol.Active() || carol.Invited() || carol.Sees(17) {
		t.Fatalf("carol declined: %+v", carol)
	}
	if !bob.Active() || bob.Invited() {
		t.Fatalf("bob accepted twice: %+v", bob)
	}
	for seq, want := range map[uint64]bool{12: false, 14: false, 15: true, 20: true, 21: false, 25: false, 29: false, 30: true, 99: true} {
		if bob.Sees(seq) != want {
			t.Errorf("bob sees %d: %v, want %v (%+v)", seq, !want, want, bob)
		}
	}
	want := bob
	apply(t, st, steps...)
	if got := member(t, st, "bob"); !reflect.DeepEqual(got, want) {
		t.Fatalf("replay changed %+v into %+v", want, got)
	}
}

func TestDeleteEndsEveryMembershipAndInvitation(t *testing.T) {
	st, ctx := openStore(t), context.Background()
	apply(t, st,
		step{10, by("alice", streams.MemberCreated, "alice", "bob")},
		step{12, by("alice", streams.MemberInvited, "carol")},
		step{20, by("alice", streams.MemberDeleted)},
		step{21, by("carol", streams.MemberAccepted, "carol")},
	)
	for _, u := range []string{"alice", "bob", "carol"} {
		m := member(t, st, u)
		if m.Active() || m.Invited() || m.Sees(21) {
			t.Errorf("%s after the deletion: %+v", u, m)
		}
	}
	if !member(t, st, "bob").Sees(20) || !member(t, st, "bob").Sees(11) {
		t.Error("a member of a deleted group keeps the history up to the deletion")
	}
	if conv, _ := st.Conversation(ctx, "g1"); conv.DeletedSeq != 20 {
		t.Fatalf("deleted seq %d, want 20", conv.DeletedSeq)
	}
}
