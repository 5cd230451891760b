package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

type detailAnswer struct {
	Conversation struct {
		DeletedSeq uint64 `json:"deleted_seq"`
	} `json:"conversation"`
	Members []struct {
		UserID string `json:"user_id"`
		Role   string `json:"role"`
	} `json:"members"`
	Invitations []struct {
		UserID    string `json:"user_id"`
		InvitedBy string `json:"invited_by"`
	} `json:"invitations"`
}

// roles returns user id -> role of conv's current members, as the API shows them.
func roles(s *apptest.System, conv string, as apptest.User) map[string]string {
	s.T.Helper()
	var d detailAnswer
	s.Do("GET", "/v1/conversations/"+conv, as.Token, nil, http.StatusOK, &d)
	out := map[string]string{}
	for _, m := range d.Members {
		out[m.UserID] = m.Role
	}
	return out
}

func setRole(s *apptest.System, conv string, by, who apptest.User, role string) {
	s.T.Helper()
	s.Do("PUT", "/v1/conversations/"+conv+"/members/"+who.ID+"/role", by.Token, map[string]string{"role": role}, http.StatusOK, nil)
}

// TestRoleMatrix: role x action -> allowed (200) or forbidden (403) through the API, each cell
// on a fresh group of an owner, an admin, two members and an admin to act on.
func TestRoleMatrix(t *testing.T) {
	s := apptest.Start(t)
	owner, admin, admin2, member, member2, outsider := s.SignUp("owner"), s.SignUp("admin"), s.SignUp("admin2"),
		s.SignUp("member"), s.SignUp("member2"), s.SignUp("outsider")
	actors := map[string]apptest.User{"owner": owner, "admin": admin, "member": member}
	type action struct {
		method, path string
		body         any
	}
	actions := map[string]func(conv string) action{
		"rename": func(c string) action {
			return action{"PATCH", "/v1/conversations/" + c, map[string]string{"name": "new"}}
		},
		"invite": func(c string) action {
			return action{"POST", "/v1/conversations/" + c + "/members", map[string]any{"user_ids": []string{outsider.ID}}}
		},
		"remove member": func(c string) action {
			return action{"DELETE", "/v1/conversations/" + c + "/members/" + member2.ID, nil}
		},
		"remove admin": func(c string) action {
			return action{"DELETE", "/v1/conversations/" + c + "/members/" + admin2.ID, nil}
		},
		"promote member": func(c string) action {
			return action{"PUT", "/v1/conversations/" + c + "/members/" + member2.ID + "/role", map[string]string{"role": "admin"}}
		},
		"demote admin": func(c string) action {
			return action{"PUT", "/v1/conversations/" + c + "/members/" + admin2.ID + "/role", map[string]string{"role": "member"}}
		},
		"transfer": func(c string) action {
			return action{"POST", "/v1/conversations/" + c + "/owner", map[string]string{"user_id": member2.ID}}
		},
		"delete": func(c string) action { return action{"DELETE", "/v1/conversations/" + c, nil} },
		"leave":  func(c string) action { return action{"POST", "/v1/conversations/" + c + "/leave", nil} },
	}
	allowed := map[string][]string{ // action -> the roles that may
		"rename": {"owner", "admin"}, "invite": {"owner", "admin"}, "remove member": {"owner", "admin"},
		"remove admin": {"owner"}, "promote member": {"owner", "admin"}, "demote admin": {"owner"},
		"transfer": {"owner"}, "delete": {"owner"}, "leave": {"owner", "admin", "member"},
	}
	n := 0
	for name, act := range actions {
		for role, actor := range actors {
			n++
			conv := createGroup(s, owner, fmt.Sprintf("g%d", n), admin, admin2, member, member2).Conversation.ID
			setRole(s, conv, owner, admin, "admin")
			setRole(s, conv, owner, admin2, "admin")
			a := act(conv)
			status, body := apptest.Request(t, a.method, s.APIURL+a.path, actor.Token, a.body)
			want := http.StatusForbidden
			if slices.Contains(allowed[name], role) {
				want = http.StatusOK
			}
			if status != want {
				t.Errorf("%s may %s: %d %s, want %d", role, name, status, body, want)
			}
		}
	}
}

// TestOwnerLeavingHandsTheGroupOver: the longest-standing admin becomes owner; with no admin
// left, the longest-standing member. The successor is in the event itself.
func TestOwnerLeavingHandsTheGroupOver(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, carol, dave := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol"), s.SignUp("dave")
	conv := createGroup(s, alice, "club", bob).Conversation.ID
	invite(s, conv, alice, carol, dave)
	accept(s, conv, carol) // carol joins before dave
	accept(s, conv, dave)
	setRole(s, conv, alice, dave, "admin")
	setRole(s, conv, alice, carol, "admin")
	wsB := live(s, bob, "b")

	var left groupAnswer
	s.Do("POST", "/v1/conversations/"+conv+"/leave", alice.Token, nil, http.StatusOK, &left)
	f := until(wsB, left.Seq)
	var ev struct {
		Member struct {
			Action string `json:"action"`
			Owner  string `json:"owner"`
		} `json:"member"`
	}
	if err := json.Unmarshal(f.Raw, &ev); err != nil || ev.Member.Action != "left" || ev.Member.Owner != carol.ID {
		t.Fatalf("the owner's leaving reached bob as %s (%v), want left with owner carol", f.Raw, err)
	}
	if got := roles(s, conv, bob); got[carol.ID] != "owner" || got[dave.ID] != "admin" || got[bob.ID] != "member" || len(got) != 3 {
		t.Fatalf("after the owner left: %v", got)
	}
	// The new owner hands over to dave and becomes an admin; dave leaves: carol (the only admin)
	// again; carol demoted and leaving... the owner can't be demoted: carol leaves, bob (the
	// longest-standing member) is the owner of what is left.
	s.Do("POST", "/v1/conversations/"+conv+"/owner", carol.Token, map[string]string{"user_id": dave.ID}, http.StatusOK, nil)
	if got := roles(s, conv, bob); got[dave.ID] != "owner" || got[carol.ID] != "admin" {
		t.Fatalf("after the hand-over: %v", got)
	}
	s.Do("PUT", "/v1/conversations/"+conv+"/members/"+carol.ID+"/role", dave.Token, map[string]string{"role": "member"}, http.StatusOK, nil)
	s.Do("POST", "/v1/conversations/"+conv+"/leave", dave.Token, nil, http.StatusOK, nil)
	if got := roles(s, conv, bob); got[bob.ID] != "owner" || got[carol.ID] != "member" || len(got) != 2 {
		t.Fatalf("with no admin left, the longest-standing member must own the group: %v", got)
	}
	if st, body := apptest.Request(t, "PUT", s.APIURL+"/v1/conversations/"+conv+"/members/"+bob.ID+"/role", bob.Token, map[string]string{"role": "owner"}); st != http.StatusBadRequest || !contains(body, "invalid_role") {
		t.Fatalf("role owner through PUT role: %d %s", st, body)
	}
}

type historyPage struct {
	Messages []struct {
		Seq  uint64 `json:"seq"`
		Text string `json:"text"`
	} `json:"messages"`
}

// TestRejoinedMemberSeesEveryInterval: a member removed and invited again sees both intervals in
// sync, history and search, never the gap; an invitee gets nothing before accepting but,
// live, the invitation itself.
func TestRejoinedMemberSeesEveryInterval(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := createGroup(s, alice, "on and off").Conversation.ID
	wsA := live(s, alice, "a")
	n := 0
	send := func(text string) uint64 {
		t.Helper()
		n++
		f := sendText(wsA, conv, fmt.Sprintf("m%d", n), text)
		if f.Type != protocol.TypeAck {
			t.Fatalf("send %s: %+v", text, f)
		}
		return f.Seq
	}
	var want []uint64 // what bob may see, oldest first
	send("before bob")
	invited := invite(s, conv, alice, bob)
	wsB := live(s, bob, "b")
	send("while bob is invited")
	var inv struct {
		Invitations []struct {
			Conversation struct {
				ID string `json:"id"`
			} `json:"conversation"`
			InvitedBy  string `json:"invited_by"`
			InvitedSeq uint64 `json:"invited_seq"`
		} `json:"invitations"`
	}
	s.Do("GET", "/v1/invitations", bob.Token, nil, http.StatusOK, &inv)
	if len(inv.Invitations) != 1 || inv.Invitations[0].Conversation.ID != conv || inv.Invitations[0].InvitedBy != alice.ID || inv.Invitations[0].InvitedSeq != invited {
		t.Fatalf("bob's invitations %+v", inv)
	}
	if f := sendText(wsB, conv, "x", "may I?"); f.Type != protocol.TypeError || f.Code != string(protocol.CodeNotMember) {
		t.Fatalf("an invitee's send answered %+v", f)
	}
	joined := accept(s, conv, bob)
	want = append(want, joined, send("first stint 1"), send("first stint 2"))
	var removed groupAnswer
	s.Do("DELETE", "/v1/conversations/"+conv+"/members/"+bob.ID, alice.Token, nil, http.StatusOK, &removed)
	want = append(want, removed.Seq)
	send("the gap 1")
	send("the gap 2")
	reinvited := invite(s, conv, alice, bob)
	want = append(want, accept(s, conv, bob), send("second stint"))

	// Live: the invitee got nothing before the acceptance; then exactly his events, and his
	// second invitation, which names him (the first came before he connected).
	wantLive := slices.Clone(want)
	wantLive = slices.Insert(wantLive, slices.Index(wantLive, removed.Seq)+1, reinvited)
	var live []uint64
	for len(live) < len(wantLive) {
		live = append(live, nextEvent(wsB).Seq)
	}
	if !slices.Equal(live, wantLive) {
		t.Fatalf("bob received %v live, want %v", live, wantLive)
	}
	// Sync from zero on a new device: the same.
	zero := uint64(0)
	ws2 := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "new", &zero))
	var synced []uint64
	for f := ws2.NextOfAny(wait, protocol.TypeMessage, protocol.TypeMember, protocol.TypeSynced); f.Type != protocol.TypeSynced; f = ws2.NextOfAny(wait, protocol.TypeMessage, protocol.TypeMember, protocol.TypeSynced) {
		if f.ConversationID == conv {
			synced = append(synced, f.Seq)
		}
	}
	if !slices.Equal(synced, want) {
		t.Fatalf("bob's sync from zero %v, want %v", synced, want)
	}
	// History, newest first, in pages of 2 across the gap.
	var paged []uint64
	path := "/v1/conversations/" + conv + "/messages?limit=2"
	for {
		var h struct {
			historyPage
			Older uint64 `json:"older"`
		}
		s.Do("GET", path, bob.Token, nil, http.StatusOK, &h)
		for _, m := range h.Messages {
			paged = append(paged, m.Seq)
		}
		if h.Older == 0 {
			break
		}
		path = fmt.Sprintf("/v1/conversations/%s/messages?limit=2&before=%d", conv, h.Older)
	}
	slices.Reverse(paged)
	if !slices.Equal(paged, want) {
		t.Fatalf("bob's history %v, want %v", paged, want)
	}
	// Unread counts from the latest acceptance: the gap's messages are never unread.
	if got := unread(s, bob, conv); got.Unread != 1 {
		t.Fatalf("bob's unread %+v, want 1 (the second stint's message)", got)
	}
}

// TestDeletedGroup: the owner deletes; every member is told, nobody can send, join or manage any
// more, and each keeps the history they saw.
func TestDeletedGroup(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, carol := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol")
	conv := createGroup(s, alice, "short-lived", bob).Conversation.ID
	invite(s, conv, alice, carol)
	wsB := live(s, bob, "b")
	hello := sendText(wsB, conv, "h", "hello")
	if st, body := apptest.Request(t, "DELETE", s.APIURL+"/v1/conversations/"+conv, bob.Token, nil); st != http.StatusForbidden {
		t.Fatalf("a member deleting: %d %s", st, body)
	}
	var deleted groupAnswer
	s.Do("DELETE", "/v1/conversations/"+conv, alice.Token, nil, http.StatusOK, &deleted)
	if f := until(wsB, deleted.Seq); !contains(f.Raw, `"action":"deleted"`) {
		t.Fatalf("bob was told %s", f.Raw)
	}
	if f := sendText(wsB, conv, "after", "anyone?"); f.Type != protocol.TypeError || f.Code != string(protocol.CodeNotMember) {
		t.Fatalf("a send to a deleted group answered %+v", f)
	}
	for _, r := range []struct {
		method, path string
		who          apptest.User
		body         any
	}{
		{"POST", "/v1/conversations/" + conv + "/accept", carol, nil},
		{"POST", "/v1/conversations/" + conv + "/members", alice, map[string]any{"user_ids": []string{carol.ID}}},
		{"DELETE", "/v1/conversations/" + conv, alice, nil},
		{"GET", "/v1/conversations/" + conv, bob, nil},
	} {
		if st, body := apptest.Request(t, r.method, s.APIURL+r.path, r.who.Token, r.body); st != http.StatusNotFound {
			t.Errorf("%s %s after the deletion: %d %s, want 404", r.method, r.path, st, body)
		}
	}
	var inv struct {
		Invitations []any `json:"invitations"`
	}
	s.Do("GET", "/v1/invitations", carol.Token, nil, http.StatusOK, &inv)
	if len(inv.Invitations) != 0 {
		t.Fatalf("carol's invitation outlived the group: %+v", inv)
	}
	var h historyPage
	s.Do("GET", "/v1/conversations/"+conv+"/messages", bob.Token, nil, http.StatusOK, &h)
	if len(h.Messages) < 2 || h.Messages[0].Seq != deleted.Seq || h.Messages[1].Seq != hello.Seq {
		t.Fatalf("bob's history of the deleted group %+v, want the deletion then hello", h.Messages)
	}
	var list struct {
		Conversations []any `json:"conversations"`
	}
	s.Do("GET", "/v1/conversations", alice.Token, nil, http.StatusOK, &list)
	if len(list.Conversations) != 0 {
		t.Fatalf("a deleted group is still listed: %+v", list)
	}
}

// TestDeclinedInvitation: declining ends the invitation; the group's admins can invite again.
func TestDeclinedInvitation(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := createGroup(s, alice, "maybe").Conversation.ID
	invite(s, conv, alice, bob)
	var d detailAnswer
	s.Do("GET", "/v1/conversations/"+conv, alice.Token, nil, http.StatusOK, &d)
	if len(d.Invitations) != 1 || d.Invitations[0].UserID != bob.ID || d.Invitations[0].InvitedBy != alice.ID {
		t.Fatalf("invitations %+v", d.Invitations)
	}
	s.Do("POST", "/v1/conversations/"+conv+"/decline", bob.Token, nil, http.StatusOK, nil)
	if st, _ := apptest.Request(t, "POST", s.APIURL+"/v1/conversations/"+conv+"/accept", bob.Token, nil); st != http.StatusNotFound {
		t.Fatalf("accepting a declined invitation: %d", st)
	}
	d = detailAnswer{}
	s.Do("GET", "/v1/conversations/"+conv, alice.Token, nil, http.StatusOK, &d)
	if len(d.Invitations) != 0 || len(d.Members) != 1 {
		t.Fatalf("after declining: %+v", d)
	}
	// Withdrawn by the owner: DELETE on an invitee.
	invite(s, conv, alice, bob)
	s.Do("DELETE", "/v1/conversations/"+conv+"/members/"+bob.ID, alice.Token, nil, http.StatusOK, nil)
	if st, _ := apptest.Request(t, "POST", s.APIURL+"/v1/conversations/"+conv+"/accept", bob.Token, nil); st != http.StatusNotFound {
		t.Fatalf("accepting a withdrawn invitation: %d", st)
	}
}
