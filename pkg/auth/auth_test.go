package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte(strings.Repeat("k", MinSecretBytes))

func TestIssueVerify(t *testing.T) {
	tk, err := NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := tk.Issue("u1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tk.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "u1" || !c.Expires.Equal(exp) {
		t.Fatalf("claims %+v, want u1 expiring %s", c, exp)
	}
}

func TestVerifyRejects(t *testing.T) {
	tk, _ := NewTokens(secret, time.Hour)
	other, _ := NewTokens([]byte(strings.Repeat("x", MinSecretBytes)), time.Hour)
	foreign, _, _ := other.Issue("u1")

	expired, _ := NewTokens(secret, time.Minute)
	expired.now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
	old, _, _ := expired.Issue("u1")

	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Issuer: issuer, Subject: "u1",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.RegisteredClaims{Issuer: issuer, Subject: "u1",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).SignedString(secret)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: issuer, Subject: "u1"}).SignedString(secret)

	for name, tok := range map[string]string{
		"garbage": "not.a.jwt", "empty": "", "foreign key": foreign, "expired": old,
		"alg none": none, "alg HS512": hs512, "no expiry": noExp,
	} {
		if _, err := tk.Verify(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestNewTokensRejectsShortSecret(t *testing.T) {
	if _, err := NewTokens([]byte("short"), time.Hour); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("correct horse", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "wrong"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "secret")
	a, err := LoadOrCreateSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || len(a) < MinSecretBytes {
		t.Fatal("secret not persisted")
	}
}
