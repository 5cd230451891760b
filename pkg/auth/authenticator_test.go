package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
)

const (
	aliceID = "01JALICE0000000000000000AA"
	ghostID = "01JGHOST0000000000000000GG"
)

var secret = []byte("0123456789abcdef0123456789abcdef-authenticator")

func TestAuthenticateNeedsAValidTokenOfAnExistingAccount(t *testing.T) {
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.CreateUser(ctx, store.User{ID: aliceID, Handle: "alice", DisplayName: "alice", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := auth.NewAuthenticator(tokens, st)
	issue := func(userID string) string {
		tok, _, err := tokens.Issue(userID)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	claims, err := a.Authenticate(ctx, issue(aliceID))
	if err != nil || claims.UserID != aliceID {
		t.Fatalf("alice's token: %+v %v", claims, err)
	}
	for name, tc := range map[string]struct {
		token  string
		reason error
	}{
		"garbage":           {"not.a.token", auth.ErrInvalidToken},
		"subject not an id": {issue("alice.*"), auth.ErrInvalidToken},
		"no such account":   {issue(ghostID), auth.ErrNoAccount},
	} {
		if _, err := a.Authenticate(ctx, tc.token); !errors.Is(err, auth.ErrRefused) || !errors.Is(err, tc.reason) {
			t.Errorf("%s: got %v, want a refusal for %v", name, err, tc.reason)
		}
	}

	// A store that cannot answer neither accepts nor refuses.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, issue(aliceID)); err == nil || errors.Is(err, auth.ErrRefused) {
		t.Fatalf("closed store: got %v, want a failure that is not a refusal", err)
	}
}
