package sdk

import (
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/services/app/apptest"
)

// device is one connected device that records the request notices it gets.
type device struct {
	*client.Client
	name    string
	notices chan client.RequestNotice
}

func dialNotices(t *testing.T, s *apptest.System, u apptest.User, name string) device {
	t.Helper()
	d := device{name: name, notices: make(chan client.RequestNotice, 16)}
	c := dialWith(t, client.Config{URL: s.WSURL, Token: u.Token, DeviceID: name,
		OnRequest: func(n client.RequestNotice) { d.notices <- n }})
	d.Client = c
	return d
}

// notice waits for d's next request notice and requires its state, conversation and users.
func (d device) notice(t *testing.T, state, conv string, from, to apptest.User) {
	t.Helper()
	select {
	case n := <-d.notices:
		if n.State != state || n.ConversationID != conv || n.From != from.ID || n.To != to.ID || n.At == 0 {
			t.Fatalf("%s got %+v, want %s of %s from %s to %s", d.name, n, state, conv, from.Handle, to.Handle)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s got no %s notice of %s within 10s", d.name, state, conv)
	}
}

// invitation waits for d's next event and requires it to be the change of user's invitation.
func (d device) invitation(t *testing.T, action, conv string, user apptest.User) {
	t.Helper()
	ev := next(t, d.Client)
	if got := client.InvitationChange(ev, user.ID); got != action || ev.ConversationID != conv {
		t.Fatalf("%s got %+v (invitation change %q), want %s of %s", d.name, ev, got, action, conv)
	}
}

// A direct request, a group invitation and their answers reach every connected device of the
// users they concern at once, through the gateway: both of bob's devices, and alice's, agree
// without polling. An ignore is told to bob's devices only.
func TestRequestsAndInvitationsReachEveryDeviceLive(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, carol := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol")
	phone, laptop := dialNotices(t, s, bob, "bob-phone"), dialNotices(t, s, bob, "bob-laptop")
	a, c := dialNotices(t, s, alice, "alice-phone"), dialNotices(t, s, carol, "carol-phone")

	// alice asks bob; he accepts on his phone.
	conv := s.Request(alice, bob)
	for _, d := range []device{phone, laptop, a} {
		d.notice(t, client.RequestOpen, conv, alice, bob)
	}
	s.Do("POST", "/v1/conversations/"+conv+"/accept", bob.Token, nil, http.StatusOK, nil)
	for _, d := range []device{phone, laptop, a} {
		d.notice(t, client.RequestAccepted, conv, alice, bob)
	}

	// carol asks bob; he ignores it (carol is not told), then accepts after all.
	fromCarol := s.Request(carol, bob)
	for _, d := range []device{phone, laptop, c} {
		d.notice(t, client.RequestOpen, fromCarol, carol, bob)
	}
	s.Do("POST", "/v1/conversations/"+fromCarol+"/ignore", bob.Token, nil, http.StatusNoContent, nil)
	for _, d := range []device{phone, laptop} {
		d.notice(t, client.RequestIgnored, fromCarol, carol, bob)
	}
	s.Do("POST", "/v1/conversations/"+fromCarol+"/accept", bob.Token, nil, http.StatusOK, nil)
	for _, d := range []device{phone, laptop, c} { // carol's next notice is the accept: no ignore came
		d.notice(t, client.RequestAccepted, fromCarol, carol, bob)
	}

	// alice invites bob and carol to a group; bob accepts on his laptop, carol declines.
	var g struct {
		Conversation struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	s.Do("POST", "/v1/groups", alice.Token, map[string]any{"name": "trip", "member_ids": []string{bob.ID, carol.ID}}, http.StatusCreated, &g)
	group := g.Conversation.ID
	for _, d := range []device{phone, laptop} {
		d.invitation(t, "invited", group, bob)
	}
	c.invitation(t, "invited", group, carol)
	s.Do("POST", "/v1/conversations/"+group+"/accept", bob.Token, nil, http.StatusOK, nil)
	for _, d := range []device{phone, laptop} {
		d.invitation(t, "accepted", group, bob)
	}
	s.Do("POST", "/v1/conversations/"+group+"/decline", carol.Token, nil, 0, nil)
	c.invitation(t, "declined", group, carol)

	// A group deleted while carol is invited to it: her devices learn that too.
	s.Do("POST", "/v1/conversations/"+group+"/members", alice.Token, map[string]any{"user_ids": []string{carol.ID}}, http.StatusOK, nil)
	c.invitation(t, "invited", group, carol)
	s.Do("DELETE", "/v1/conversations/"+group, alice.Token, nil, 0, nil)
	if ev := next(t, c.Client); ev.ConversationID != group || ev.Member == nil || ev.Member.Action != "deleted" {
		t.Fatalf("carol got %+v, want the group's deletion", ev)
	}
}
