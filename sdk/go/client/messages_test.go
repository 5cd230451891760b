package client

import (
	"testing"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Apply folds edits, deletes and hides into the view in any order a device may get them; a
// deletion is final.
func TestMessagesApply(t *testing.T) {
	ms := Messages{}
	target := &protocol.Target{Seq: 1, MessageID: "m1"}
	for _, e := range []Event{
		{Type: protocol.TypeMessage, Seq: 1, ConversationID: "g1", SenderID: "u2", Text: "helo"},
		{Type: protocol.TypeEdit, Seq: 2, ConversationID: "g1", Target: target, Text: "hello", EditedAt: 5},
		{Type: protocol.TypeMessage, Seq: 3, ConversationID: "g1", SenderID: "u2", Text: "bye"},
		{Type: protocol.TypeHide, Seq: 4, ConversationID: "g1", Target: &protocol.Target{Seq: 3}, Deleted: true},
		{Type: protocol.TypeEdit, Seq: 5, ConversationID: "g1", Target: &protocol.Target{Seq: 3}, Text: "back?", EditedAt: 6},
		{Type: protocol.TypeEdit, Seq: 6, ConversationID: "g1", Target: &protocol.Target{Seq: 0x99}, Text: "older than the cursor", EditedAt: 7},
		{Type: protocol.TypeEdit, Seq: 7, ConversationID: "g1", Text: "no target"},
	} {
		ms.Apply(e)
	}
	want := Messages{
		1:    {ConversationID: "g1", SenderID: "u2", Text: "hello", EditedAt: 5},
		3:    {ConversationID: "g1", SenderID: "u2", Deleted: true},
		0x99: {ConversationID: "g1", Text: "older than the cursor", EditedAt: 7},
	}
	if len(ms) != len(want) {
		t.Fatalf("view %+v, want %+v", ms, want)
	}
	for seq, m := range want {
		if ms[seq] != m {
			t.Errorf("seq %d: %+v, want %+v", seq, ms[seq], m)
		}
	}
	// A replayed message after its delete (a reconnect's catch-up) stays deleted.
	ms.Apply(Event{Type: protocol.TypeMessage, Seq: 3, ConversationID: "g1", SenderID: "u2", Text: "bye"})
	if !ms[3].Deleted || ms[3].Text != "" {
		t.Errorf("replayed deleted message: %+v", ms[3])
	}
}

// InvitationChange names the user's own invitation changes only.
func TestInvitationChange(t *testing.T) {
	ev := func(action string, users ...string) Event {
		return Event{Type: protocol.TypeMember, Member: &protocol.MemberChange{Action: action, UserIDs: users}}
	}
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{ev("invited", "u2", "u1"), "invited"},
		{ev("declined", "u1"), "declined"},
		{ev("accepted", "u1"), "accepted"},
		{ev("invited", "u2"), ""},
		{ev("added", "u1"), ""},
		{Event{Type: protocol.TypeMessage}, ""},
	} {
		if got := InvitationChange(tc.e, "u1"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e.Member, got, tc.want)
		}
	}
}
