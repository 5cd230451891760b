package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
)

const (
	aliceID   = "01JALICE0000000000000000AA"
	bobID     = "01JBOB000000000000000000BB"
	ghostID   = "01JGHOST0000000000000000GG"
	aliceSess = "01JSESSALICE000000000000AA"
	bobSess   = "01JSESSBOB00000000000000BB"
	deadSess  = "01JSESSDEAD0000000000000DD"
	noSess    = "01JSESSNONE0000000000000NN"
	ghostSess = "01JSESSGHOST000000000000GG"
)

var secret = []byte("0123456789abcdef0123456789abcdef-authenticator")

func TestAuthenticateNeedsAValidTokenOfALiveSessionOfAnExistingAccount(t *testing.T) {
	st := pebbletest.Open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, u := range []store.User{{ID: aliceID, Handle: "alice"}, {ID: bobID, Handle: "bob"}} {
		u.DisplayName, u.CreatedAt = u.Handle, now
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []store.Session{
		{ID: aliceSess, UserID: aliceID}, {ID: bobSess, UserID: bobID},
		{ID: deadSess, UserID: aliceID}, {ID: ghostSess, UserID: ghostID},
	} {
		s.CreatedAt, s.LastUsed, s.RefreshHash = now, now, []byte("h")
		if err := st.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RevokeSession(ctx, deadSess, now); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := auth.NewAuthenticator(tokens, st)
	issue := func(tokens *auth.Tokens, userID, sessionID string) string {
		tok, _, err := tokens.Issue(userID, sessionID)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	foreignKey, err := auth.NewTokens([]byte(strings.Repeat("f", auth.MinSecretBytes)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	claims, err := a.Authenticate(ctx, issue(tokens, aliceID, aliceSess))
	if err != nil || claims.UserID != aliceID || claims.SessionID != aliceSess {
		t.Fatalf("alice's token: %+v %v", claims, err)
	}
	for name, tc := range map[string]struct {
		token  string
		reason error
	}{
		"garbage":               {"not.a.token", auth.ErrInvalidToken},
		"foreign-signed":        {issue(foreignKey, aliceID, aliceSess), auth.ErrInvalidToken},
		"subject not an id":     {issue(tokens, "alice.*", aliceSess), auth.ErrInvalidToken},
		"no session claim":      {issue(tokens, aliceID, ""), auth.ErrInvalidToken},
		"session not an id":     {issue(tokens, aliceID, "s.>"), auth.ErrInvalidToken},
		"another's session":     {issue(tokens, aliceID, bobSess), auth.ErrInvalidToken},
		"revoked session":       {issue(tokens, aliceID, deadSess), auth.ErrSessionEnded},
		"unknown session":       {issue(tokens, aliceID, noSess), auth.ErrSessionEnded},
		"no such account":       {issue(tokens, ghostID, ghostSess), auth.ErrNoAccount},
		"bearer of no one here": {issue(tokens, ghostID, noSess), auth.ErrSessionEnded},
	} {
		if _, err := a.Authenticate(ctx, tc.token); !errors.Is(err, auth.ErrRefused) || !errors.Is(err, tc.reason) {
			t.Errorf("%s: got %v, want a refusal for %v", name, err, tc.reason)
		}
	}

	// A store that cannot answer neither accepts nor refuses.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, issue(tokens, aliceID, aliceSess)); err == nil || errors.Is(err, auth.ErrRefused) {
		t.Fatalf("closed store: got %v, want a failure that is not a refusal", err)
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc",
		"": "", "Bearer": "", "Bearer ": "", "Basic abc": "", "abc": "",
	} {
		got, ok := auth.BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
