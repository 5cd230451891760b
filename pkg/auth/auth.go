// Package auth issues and verifies natter's tokens and hashes passwords (bcrypt). An access
// token is a short-lived JWT (HS256 pinned) naming an account and a session; a refresh token is
// an opaque random string naming a session, kept in the store only as a hash, and rotated at
// every use (see Sessions). The API and the gateways check access tokens with one
// Authenticator, which also requires the session to be live and the account to exist.
package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// ErrInvalidToken: the token is malformed, badly signed, of another algorithm or expired.
var ErrInvalidToken = errors.New("invalid token")

// MinPasswordCost is the cheapest bcrypt cost, for tests.
const MinPasswordCost = bcrypt.MinCost

// ErrBadPassword: the password does not match.
var ErrBadPassword = errors.New("bad password")

// MaxPasswordBytes is the longest password natter takes. bcrypt reads no further than 72 bytes,
// so a longer password would match every password that shares its first 72 bytes: HashPassword
// refuses one and CheckPassword never matches one, so that every byte of a password counts.
//
// natter refuses rather than pre-hashing (bcrypt of a base64 HMAC or SHA-512 of the password)
// because 72 bytes is room enough for a passphrase, and refusing keeps every stored hash, old
// or new, plain bcrypt that verifies as before; a pre-hash would need a second hash format, a
// marker to tell the two apart, and a path off the truncating old one.
const MaxPasswordBytes = 72

const issuer = "natter"

// MinSecretBytes is the shortest signing secret Tokens accepts.
const MinSecretBytes = 32

// Tokens issues and verifies access tokens. Safe for concurrent use.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens returns a token service signing with secret (at least MinSecretBytes) and issuing
// tokens that live for ttl.
func NewTokens(secret []byte, ttl time.Duration) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("token secret has %d bytes, want at least %d", len(secret), MinSecretBytes)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token ttl %s must be positive", ttl)
	}
	return &Tokens{secret: secret, ttl: ttl, now: time.Now}, nil
}

// TTL is the lifetime of the access tokens t issues.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Claims is what a verified token says.
type Claims struct {
	UserID    string
	SessionID string // the session the token was issued to; see Sessions
	Expires   time.Time
}

// accessClaims is the JWT payload: the registered claims and "sid", the session id.
type accessClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid,omitempty"`
}

// Issue returns a signed access token for userID in session sessionID, and its expiry.
func (t *Tokens) Issue(userID, sessionID string) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, accessClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}, SessionID: sessionID})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp.Truncate(time.Second), nil
}

// Verify checks signature, algorithm (HS256 only), issuer and expiry. It does not require a
// session id; Authenticator does.
func (t *Tokens) Verify(token string) (Claims, error) {
	var ac accessClaims
	_, err := jwt.ParseWithClaims(token, &ac, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if ac.Subject == "" {
		return Claims{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	return Claims{UserID: ac.Subject, SessionID: ac.SessionID, Expires: ac.ExpiresAt.Time}, nil
}

// HashPassword returns a bcrypt hash of password at the given cost (0: bcrypt's default, 10).
// Tests use MinPasswordCost (4); deployments should keep the default or raise it. A password
// over MaxPasswordBytes is an error.
func HashPassword(password string, cost int) ([]byte, error) {
	if len(password) > MaxPasswordBytes {
		return nil, fmt.Errorf("hash password: %d bytes, the limit is %d", len(password), MaxPasswordBytes)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// CheckPassword returns ErrBadPassword unless password matches hash. A password over
// MaxPasswordBytes matches no hash (bcrypt alone would compare its first 72 bytes); it is refused
// without the bcrypt work, which tells a caller nothing it did not send.
func CheckPassword(hash []byte, password string) error {
	if len(password) > MaxPasswordBytes {
		return ErrBadPassword
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil {
		return ErrBadPassword
	}
	return nil
}

// LoadOrCreateSecret reads the signing secret from path, creating a random one (mode 0600) if the
// file does not exist, so that one machine's tokens survive restarts without configuration.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < MinSecretBytes {
			return nil, fmt.Errorf("secret file %s has %d bytes, want at least %d", path, len(b), MinSecretBytes)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	b = make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret dir: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write secret file: %w", err)
	}
	return b, nil
}
