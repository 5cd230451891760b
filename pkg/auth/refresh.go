package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/natter-chat/natter/streams"
)

// A refresh token is "nr1.<session id>.<secret>.<mac>": 32 random bytes of secret and an
// HMAC-SHA-256 of the session id and the secret under a key derived from the signing secret,
// both unpadded base64url. The store keeps only RefreshHash of the whole token.
//
// The MAC lets the server tell a token it issued for a session from one made up: a token with a
// valid MAC that is not the session's current one was issued earlier and rotated away, so its
// use is a reuse (the token was copied) and ends the session; a made-up token is only refused.
const (
	refreshPrefix = "nr1."
	refreshSecret = 32
	// MaxRefreshTokenBytes bounds a refresh token; a longer string is refused unread.
	MaxRefreshTokenBytes = 160
)

// b64 decodes strictly, so that every token has one spelling.
var b64 = base64.RawURLEncoding.Strict()

// refreshKey is the MAC key of refresh tokens, kept apart from the JWT signing key.
func (t *Tokens) refreshKey() []byte {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte("natter refresh token key v1"))
	return m.Sum(nil)
}

func (t *Tokens) refreshMAC(sessionID, secret string) []byte {
	m := hmac.New(sha256.New, t.refreshKey())
	m.Write([]byte(sessionID))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// NewRefreshToken returns a new refresh token for session sessionID and its RefreshHash.
func (t *Tokens) NewRefreshToken(sessionID string) (token string, hash []byte, err error) {
	raw := make([]byte, refreshSecret)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("refresh token: %w", err)
	}
	secret := b64.EncodeToString(raw)
	token = refreshPrefix + sessionID + "." + secret + "." + b64.EncodeToString(t.refreshMAC(sessionID, secret))
	return token, RefreshHash(token), nil
}

// ParseRefreshToken returns the session a refresh token was issued for and its RefreshHash, or
// an error wrapping ErrInvalidToken if the token is malformed or was not issued with this
// signing secret. It does not say whether the token is the session's current one: compare the
// hash with the stored one.
func (t *Tokens) ParseRefreshToken(token string) (sessionID string, hash []byte, err error) {
	if len(token) > MaxRefreshTokenBytes {
		return "", nil, fmt.Errorf("%w: refresh token over %d bytes", ErrInvalidToken, MaxRefreshTokenBytes)
	}
	rest, ok := strings.CutPrefix(token, refreshPrefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 || !streams.ValidToken(parts[0]) {
		return "", nil, fmt.Errorf("%w: not a refresh token", ErrInvalidToken)
	}
	raw, err := b64.DecodeString(parts[1])
	if err != nil || len(raw) != refreshSecret {
		return "", nil, fmt.Errorf("%w: refresh token secret", ErrInvalidToken)
	}
	mac, err := b64.DecodeString(parts[2])
	if err != nil || !hmac.Equal(mac, t.refreshMAC(parts[0], parts[1])) {
		return "", nil, fmt.Errorf("%w: refresh token not issued here", ErrInvalidToken)
	}
	return parts[0], RefreshHash(token), nil
}

// RefreshHash is what the store keeps of a refresh token: its SHA-256. A refresh token carries
// 256 random bits, so a fast hash is enough: no guess can find a token from its hash.
func RefreshHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
