package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify: a bearer token from a client, however malformed, is rejected with ErrInvalidToken
// or verified as natter's own, with a subject and a session; never a panic.
func FuzzVerify(f *testing.F) {
	tokens, err := NewTokens([]byte(strings.Repeat("k", MinSecretBytes)), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	good, _, err := tokens.Issue("u1", "s1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good + "x")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := tokens.Verify(token)
		if err != nil {
			if c != (Claims{}) {
				t.Fatalf("error %v with claims %+v", err, c)
			}
			return
		}
		if c.UserID == "" || c.SessionID == "" || c.Expires.IsZero() {
			t.Fatalf("verified %q without a subject, session or expiry: %+v", token, c)
		}
	})
}
