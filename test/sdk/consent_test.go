package sdk

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/services/app/apptest"
)

// The Go SDK's consent calls against a real natter: bob ignores, then accepts alice's request
// (alice's message, held until then, is in his history), blocks and unblocks her, and hides
// his presence.
func TestConsentCalls(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Request(alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := client.Dial(client.Config{URL: s.WSURL, Token: alice.Token, DeviceID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ack, err := a.Send(ctx, conv, "may I?")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := client.Login(ctx, s.APIURL, "bob", "password-bob")
	if err != nil {
		t.Fatal(err)
	}
	history := func() int {
		var page struct {
			Messages []struct {
				MessageID string `json:"message_id"`
			} `json:"messages"`
		}
		s.Do("GET", "/v1/conversations/"+conv+"/messages", bob.Token, nil, 200, &page)
		n := 0
		for _, m := range page.Messages {
			if m.MessageID == ack.MessageID {
				n++
			}
		}
		return n
	}
	if err := sess.IgnoreRequest(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if history() != 0 {
		t.Fatal("an ignored request's message is in bob's history")
	}
	if err := sess.AcceptRequest(ctx, conv); err != nil {
		t.Fatal(err)
	}
	if history() != 1 {
		t.Fatal("the accepted request's message is not in bob's history")
	}
	if err := sess.Block(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if blocks, err := sess.Blocks(ctx); err != nil || len(blocks) != 1 || blocks[0].UserID != alice.ID || blocks[0].BlockedAt.IsZero() {
		t.Fatalf("blocks %+v, %v", blocks, err)
	}
	if history() != 0 {
		t.Fatal("a blocked user's message is in bob's history")
	}
	if err := sess.Unblock(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	if blocks, err := sess.Blocks(ctx); err != nil || len(blocks) != 0 {
		t.Fatalf("blocks after unblock %+v, %v", blocks, err)
	}
	if err := sess.SetPresenceVisibility(ctx, client.PresenceNobody); err != nil {
		t.Fatal(err)
	}
	if v, err := sess.PresenceVisibility(ctx); err != nil || v != client.PresenceNobody {
		t.Fatalf("visibility %q, %v", v, err)
	}
	if err := sess.SetPresenceVisibility(ctx, "friends"); err == nil {
		t.Fatal("an unknown setting was taken")
	}
}
