package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, apptest.IgnoreLibraryGoroutines()...) }

const wait = 10 * time.Second

type groupAnswer struct {
	Conversation struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Members []string `json:"members"`
	} `json:"conversation"`
	Seq uint64 `json:"seq"`
}

// createGroup creates a group owned by owner that invites members, and has each of them accept:
// Seq is the last acceptance (the created event if there are no members).
func createGroup(s *apptest.System, owner apptest.User, name string, members ...apptest.User) groupAnswer {
	s.T.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	var g groupAnswer
	s.Do("POST", "/v1/groups", owner.Token, map[string]any{"name": name, "member_ids": ids}, http.StatusCreated, &g)
	if len(members) > 0 {
		g.Seq = accept(s, g.Conversation.ID, members...)
	}
	return g
}

// accept has each user accept their invitation to conv and returns the seq of the last one.
func accept(s *apptest.System, conv string, users ...apptest.User) uint64 {
	s.T.Helper()
	var a groupAnswer
	for _, u := range users {
		s.Do("POST", "/v1/conversations/"+conv+"/accept", u.Token, nil, http.StatusOK, &a)
	}
	return a.Seq
}

// invite has by invite users to conv and returns the seq of the invited event.
func invite(s *apptest.System, conv string, by apptest.User, users ...apptest.User) uint64 {
	s.T.Helper()
	var a groupAnswer
	s.Do("POST", "/v1/conversations/"+conv+"/members", by.Token, map[string]any{"user_ids": ids(users)}, http.StatusOK, &a)
	return a.Seq
}

// until reads ws's message and member events up to and including the one at seq.
func until(ws *apptest.WS, seq uint64) apptest.Frame {
	ws.T.Helper()
	for {
		f := nextEvent(ws)
		if f.Seq >= seq {
			if f.Seq != seq {
				ws.T.Fatalf("got %+v, want an event at %d", f, seq)
			}
			return f
		}
	}
}

func live(s *apptest.System, u apptest.User, device string) *apptest.WS {
	ws := apptest.Dial(s.T, apptest.WSURLFor(s.WSURL, u.Token, device, nil))
	ws.NextOf(protocol.TypeSynced, wait)
	return ws
}

func sendText(ws *apptest.WS, conv, cmid, text string) apptest.Frame {
	ws.T.Helper()
	ws.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: cmid, Text: text})
	return ws.NextOfAny(wait, protocol.TypeAck, protocol.TypeError)
}

// nextEvent returns the next message or member event.
func nextEvent(ws *apptest.WS) apptest.Frame {
	ws.T.Helper()
	return ws.NextOfAny(wait, protocol.TypeMessage, protocol.TypeMember)
}

func TestGroupMembershipChangesAreEventsInOrderWithMessages(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, carol, dave := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol"), s.SignUp("dave")
	wsA, wsB1, wsB2, wsC, wsD := live(s, alice, "a"), live(s, bob, "b1"), live(s, bob, "b2"), live(s, carol, "c"), live(s, dave, "d")

	g := createGroup(s, alice, "trip", bob, carol)
	conv := g.Conversation.ID
	for _, ws := range []*apptest.WS{wsA, wsB1, wsB2, wsC} {
		if f := until(ws, g.Seq); f.Type != protocol.TypeMember || f.ConversationID != conv {
			t.Fatalf("event %+v, want the last acceptance at %d", f, g.Seq)
		}
	}
	hello := sendText(wsA, conv, "m1", "hello all")
	for _, ws := range []*apptest.WS{wsA, wsB1, wsB2, wsC} {
		if f := nextEvent(ws); f.Seq != hello.Seq || f.Text != "hello all" {
			t.Fatalf("got %+v, want hello at %d", f, hello.Seq)
		}
	}

	// carol is removed: she sees her removal, and nothing after it.
	var removed groupAnswer
	s.Do("DELETE", "/v1/conversations/"+conv+"/members/"+carol.ID, alice.Token, nil, http.StatusOK, &removed)
	if f := nextEvent(wsC); f.Type != protocol.TypeMember || f.Seq != removed.Seq {
		t.Fatalf("carol got %+v, want her removal at %d", f, removed.Seq)
	}
	after := sendText(wsB1, conv, "m2", "carol is gone")
	if f := sendText(wsC, conv, "m3", "let me back"); f.Type != protocol.TypeError || f.Code != string(protocol.CodeNotMember) {
		t.Fatalf("removed member's send answered %+v", f)
	}
	// dave is invited (by the owner: a plain member may not), accepts, and sees his invitation
	// (live only: it names him), the event of his acceptance and what follows — nothing else of
	// what came before.
	if st, body := apptest.Request(t, "POST", s.APIURL+"/v1/conversations/"+conv+"/members", bob.Token,
		map[string]any{"user_ids": []string{dave.ID}}); st != http.StatusForbidden || !contains(body, "forbidden") {
		t.Fatalf("a plain member inviting: %d %s", st, body)
	}
	invited := invite(s, conv, alice, dave)
	var added groupAnswer
	added.Seq = accept(s, conv, dave)
	if f := nextEvent(wsD); f.Type != protocol.TypeMember || f.Seq != invited {
		t.Fatalf("dave got %+v, want his invitation at %d", f, invited)
	}
	if f := nextEvent(wsD); f.Type != protocol.TypeMember || f.Seq != added.Seq {
		t.Fatalf("dave got %+v, want his acceptance at %d", f, added.Seq)
	}
	welcome := sendText(wsD, conv, "m4", "hi, dave here")
	if welcome.Type != protocol.TypeAck {
		t.Fatalf("new member cannot send: %+v", welcome)
	}
	// Every remaining device saw the same sequence: removal, bob's message, invitation,
	// acceptance, dave's message.
	want := []uint64{removed.Seq, after.Seq, invited, added.Seq, welcome.Seq}
	for name, ws := range map[string]*apptest.WS{"alice": wsA, "bob/1": wsB1, "bob/2": wsB2} {
		var got []uint64
		for range want {
			got = append(got, nextEvent(ws).Seq)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s saw %v, want %v", name, got, want)
		}
	}
	// Carol's socket got nothing after her removal; the history she may read ends there too.
	wsC.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "last"})
	for f := wsC.Next(wait); f.Type != protocol.TypePong; f = wsC.Next(wait) {
		if f.Type == protocol.TypeMessage || f.Type == protocol.TypeMember {
			t.Fatalf("removed member received %+v", f)
		}
	}
	var page struct {
		Messages []struct{ Seq uint64 } `json:"messages"`
	}
	s.Do("GET", "/v1/conversations/"+conv+"/messages", carol.Token, nil, http.StatusOK, &page)
	if len(page.Messages) == 0 || page.Messages[0].Seq != removed.Seq {
		t.Fatalf("carol's history starts at %+v, want her removal %d", page.Messages, removed.Seq)
	}
	s.Do("GET", "/v1/conversations/"+conv+"/messages", dave.Token, nil, http.StatusOK, &page)
	if len(page.Messages) != 2 || page.Messages[1].Seq != added.Seq {
		t.Fatalf("dave's history %+v, want [his message, his addition]", page.Messages)
	}
	// Rename is an event too, by the owner or an admin.
	if st, body := apptest.Request(t, "PATCH", s.APIURL+"/v1/conversations/"+conv, dave.Token, map[string]string{"name": "mine"}); st != http.StatusForbidden {
		t.Fatalf("a plain member renaming: %d %s", st, body)
	}
	var renamed groupAnswer
	s.Do("PATCH", "/v1/conversations/"+conv, alice.Token, map[string]string{"name": "trip 2027"}, http.StatusOK, &renamed)
	if renamed.Conversation.Name != "trip 2027" {
		t.Fatalf("rename answered %+v", renamed)
	}
	if f := nextEvent(wsA); f.Type != protocol.TypeMember || f.Seq != renamed.Seq {
		t.Fatalf("rename event %+v", f)
	}
}

func TestGroupHasAtMost100MembersEvenUnderConcurrentAdds(t *testing.T) {
	s := apptest.Start(t)
	owner := s.SignUp("owner")
	var users []apptest.User
	for i := 0; i < 110; i++ {
		users = append(users, s.SignUp(fmt.Sprintf("user%03d", i)))
	}
	g := createGroup(s, owner, "big", users[:95]...) // 96 members
	conv := g.Conversation.ID
	// Members and pending invitations count together against the limit, so acceptances can
	// never take the group past it.
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = apptest.Request(t, "POST", s.APIURL+"/v1/conversations/"+conv+"/members", owner.Token,
				map[string]any{"user_ids": []string{users[95+i].ID}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
		default:
			t.Fatalf("concurrent add answered %d", st)
		}
	}
	var detail struct {
		Members []struct {
			UserID string `json:"user_id"`
		} `json:"members"`
		Invitations []struct {
			UserID string `json:"user_id"`
		} `json:"invitations"`
	}
	s.Do("GET", "/v1/conversations/"+conv, owner.Token, nil, http.StatusOK, &detail)
	if ok != 4 || len(detail.Members)+len(detail.Invitations) != store.MaxGroupMembers {
		t.Fatalf("%d invitations succeeded, the group has %d members and %d invitees; want 4 and %d in all",
			ok, len(detail.Members), len(detail.Invitations), store.MaxGroupMembers)
	}
	for _, inv := range detail.Invitations {
		for _, u := range users {
			if u.ID == inv.UserID {
				accept(s, conv, u)
			}
		}
	}
	s.Do("GET", "/v1/conversations/"+conv, owner.Token, nil, http.StatusOK, &detail)
	if len(detail.Members) != store.MaxGroupMembers || len(detail.Invitations) != 0 {
		t.Fatalf("after the acceptances: %d members, %d invitees", len(detail.Members), len(detail.Invitations))
	}
	status, body := apptest.Request(t, "POST", s.APIURL+"/v1/conversations/"+conv+"/members", owner.Token, map[string]any{"user_ids": []string{users[109].ID}})
	if status != http.StatusConflict || !contains(body, "group_full") {
		t.Fatalf("the 101st member: %d %s", status, body)
	}
	status, body = apptest.Request(t, "POST", s.APIURL+"/v1/groups", owner.Token, map[string]any{"name": "too big", "member_ids": ids(users[:100])})
	if status != http.StatusConflict || !contains(body, "group_full") {
		t.Fatalf("creating a group of 101: %d %s", status, body)
	}
}

// Every group endpoint answers a non-member, a removed member and a missing conversation alike.
func TestGroupEndpointsRefuseNonMembersAlike(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, eve := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("eve")
	conv := createGroup(s, alice, "private", bob).Conversation.ID
	s.Do("DELETE", "/v1/conversations/"+conv+"/members/"+bob.ID, alice.Token, nil, http.StatusOK, nil)
	requests := []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/v1/conversations/%s", map[string]string{"name": "mine"}},
		{"POST", "/v1/conversations/%s/members", map[string]any{"user_ids": []string{eve.ID}}},
		{"DELETE", "/v1/conversations/%s/members/" + alice.ID, nil},
		{"POST", "/v1/conversations/%s/leave", nil},
		{"GET", "/v1/conversations/%s", nil},
		{"PUT", "/v1/conversations/%s/members/" + alice.ID + "/role", map[string]string{"role": "admin"}},
		{"POST", "/v1/conversations/%s/owner", map[string]string{"user_id": alice.ID}},
		{"DELETE", "/v1/conversations/%s", nil},
		{"POST", "/v1/conversations/%s/accept", nil},
		{"POST", "/v1/conversations/%s/decline", nil},
	}
	for _, r := range requests {
		_, missing := apptest.Request(t, r.method, s.APIURL+fmt.Sprintf(r.path, "gNOSUCHGROUP"), eve.Token, r.body)
		for who, u := range map[string]apptest.User{"non-member": eve, "removed member": bob} {
			status, body := apptest.Request(t, r.method, s.APIURL+fmt.Sprintf(r.path, conv), u.Token, r.body)
			if status != http.StatusNotFound || string(body) != string(missing) {
				t.Errorf("%s %s as %s: %d %s; want 404 exactly like a missing group (%s)", r.method, r.path, who, status, body, missing)
			}
		}
	}
	// A plain member removes nobody.
	carol := s.SignUp("carol")
	s.Do("POST", "/v1/conversations/"+conv+"/members", alice.Token, map[string]any{"user_ids": []string{carol.ID, eve.ID}}, http.StatusOK, nil)
	accept(s, conv, carol, eve)
	if st, body := apptest.Request(t, "DELETE", s.APIURL+"/v1/conversations/"+conv+"/members/"+alice.ID, carol.Token, nil); st != http.StatusForbidden {
		t.Fatalf("a member removing the owner: %d %s", st, body)
	}
}

func ids(us []apptest.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// The gateway checks a sender against the member record the store keeps in memory
// (store.MemberCache): a member who sent (so her record is kept) and is then removed is
// refused, and so is every send after it, while her refused record is the one kept.
func TestARemovedMemberIsRefusedFromTheKeptRecordToo(t *testing.T) {
	s := apptest.Start(t)
	alice, carol := s.SignUp("alice"), s.SignUp("carol")
	wsC := live(s, carol, "c")
	conv := createGroup(s, alice, "trip", carol).Conversation.ID
	if f := sendText(wsC, conv, "m1", "hi"); f.Type != protocol.TypeAck {
		t.Fatalf("a member's send answered %+v", f)
	}
	s.Do("DELETE", "/v1/conversations/"+conv+"/members/"+carol.ID, alice.Token, nil, http.StatusOK, nil)
	for _, cmid := range []string{"m2", "m3", "m4"} {
		if f := sendText(wsC, conv, cmid, "let me back"); f.Type != protocol.TypeError || f.Code != string(protocol.CodeNotMember) {
			t.Fatalf("removed member's send %s answered %+v", cmid, f)
		}
	}
}
