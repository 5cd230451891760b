package sdk

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/services/app/apptest"
)

// The Go SDK's group calls against the real API: invite, accept, roles, hand-over, deletion,
// and the coded errors of a forbidden change.
func TestGroupsThroughTheGoSDK(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	ctx := context.Background()
	login := func(u apptest.User) *client.Session {
		sess, err := client.Login(ctx, s.APIURL, u.Handle, "password-"+u.Handle)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	a, b := login(alice), login(bob)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	g, err := a.CreateGroup(ctx, "Trip", []string{bob.ID})
	must(g, err)
	inv, err := b.Invitations(ctx)
	if err != nil || len(inv) != 1 || inv[0].Conversation.ID != g.Conversation.ID || inv[0].InvitedBy != alice.ID {
		t.Fatalf("bob's invitations %+v, %v", inv, err)
	}
	must(b.Accept(ctx, g.Conversation.ID))
	var apiErr *client.APIError
	if _, err := b.Rename(ctx, g.Conversation.ID, "mine"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.Code != "forbidden" {
		t.Fatalf("a plain member renaming: %v", err)
	}
	must(a.SetRole(ctx, g.Conversation.ID, bob.ID, client.RoleAdmin))
	must(b.Rename(ctx, g.Conversation.ID, "Long trip"))
	must(a.TransferOwnership(ctx, g.Conversation.ID, bob.ID))
	d, err := a.Conversation(ctx, g.Conversation.ID)
	must(d, err)
	roles := map[string]string{}
	for _, m := range d.Members {
		roles[m.UserID] = m.Role
	}
	if d.Conversation.Name != "Long trip" || roles[bob.ID] != client.RoleOwner || roles[alice.ID] != client.RoleAdmin {
		t.Fatalf("detail %+v", d)
	}
	del, err := b.DeleteGroup(ctx, g.Conversation.ID)
	if err != nil || del.Conversation.DeletedSeq != del.Seq {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	if _, err := a.Conversation(ctx, g.Conversation.ID); !errors.As(err, &apiErr) || apiErr.Code != "not_member" {
		t.Fatalf("a deleted group's detail: %v", err)
	}
}
