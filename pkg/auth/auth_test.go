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
	tok, exp, err := tk.Issue("u1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tk.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "u1" || c.SessionID != "s1" || !c.Expires.Equal(exp) {
		t.Fatalf("claims %+v, want u1 in s1 expiring %s", c, exp)
	}
}

func TestVerifyRejects(t *testing.T) {
	tk, _ := NewTokens(secret, time.Hour)
	other, _ := NewTokens([]byte(strings.Repeat("x", MinSecretBytes)), time.Hour)
	foreign, _, _ := other.Issue("u1", "s1")

	expired, _ := NewTokens(secret, time.Minute)
	expired.now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
	old, _, _ := expired.Issue("u1", "s1")

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

// bcrypt reads 72 bytes; a longer password that shares them must not pass for the real one.
func TestPasswordEveryByteCounts(t *testing.T) {
	p72 := strings.Repeat("p", MaxPasswordBytes)
	h, err := HashPassword(p72, MinPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, p72); err != nil {
		t.Fatalf("exact 72-byte password: %v", err)
	}
	for _, longer := range []string{p72 + "x", p72 + strings.Repeat("anything", 100)} {
		if err := CheckPassword(h, longer); !errors.Is(err, ErrBadPassword) {
			t.Errorf("%d-byte password sharing the first 72 bytes: got %v, want ErrBadPassword", len(longer), err)
		}
		if _, err := HashPassword(longer, MinPasswordCost); err == nil {
			t.Errorf("hashed a %d-byte password", len(longer))
		}
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
