package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// ErrRefreshReused: a refresh token was used after it had been rotated away, so two parties
// hold the session's tokens; the session has been revoked. Wrapped with ErrRefused and
// ErrSessionEnded.
var ErrRefreshReused = errors.New("refresh token reused")

// DefaultRefreshIdle is how long a session lives without a refresh.
const DefaultRefreshIdle = 30 * 24 * time.Hour

// announceTimeout bounds the wait for NATS to take a revocation, when the caller set no deadline.
const announceTimeout = 5 * time.Second

// MaxUserAgent bounds the user agent kept with a session, in bytes.
const MaxUserAgent = 256

// SessionStore is the store Sessions needs; store.Store has it.
type SessionStore interface {
	Accounts
	CreateSession(ctx context.Context, s store.Session) error
	Sessions(ctx context.Context, userID string) ([]store.Session, error)
	RotateSession(ctx context.Context, id string, oldHash, newHash []byte, usedAt time.Time) (store.Session, error)
	RevokeSession(ctx context.Context, id string, revokedAt time.Time) (store.Session, error)
}

// Sessions starts, refreshes, lists and revokes login sessions.
//
// A session is created at login with a refresh token; the access tokens issued in it are
// short-lived (Tokens' TTL) and name it. Refresh rotates: it returns a new access token and a
// new refresh token and the old refresh token is dead from then on. Using a dead refresh token
// of a session (the MAC proves it was issued for that session) means it was copied, so the
// session is revoked: the thief and the owner both have to log in again, and the owner notices.
// Two refreshes with the same token at once count as reuse too: a client refreshes one at a time.
//
// Revoke records the revocation in the store first, so Authenticate refuses the session's
// access tokens from then on, and then announces it on streams.SessionRevokedSubject, which
// gateways turn into closing the session's sockets. Safe for concurrent use.
type Sessions struct {
	tokens *Tokens
	store  SessionStore
	auth   *Authenticator
	nc     *nats.Conn
	idle   time.Duration
	now    func() time.Time
}

// NewSessions returns Sessions issuing with tokens, keeping sessions in st and announcing
// revocations on nc. A session not refreshed for idle (0: DefaultRefreshIdle) ends.
func NewSessions(tokens *Tokens, st SessionStore, nc *nats.Conn, idle time.Duration) (*Sessions, error) {
	switch {
	case tokens == nil || st == nil || nc == nil:
		return nil, errors.New("sessions: tokens, store and NATS connection are required")
	case idle < 0:
		return nil, fmt.Errorf("sessions: idle lifetime %s is negative", idle)
	case idle == 0:
		idle = DefaultRefreshIdle
	}
	return &Sessions{tokens: tokens, store: st, auth: NewAuthenticator(tokens, st), nc: nc, idle: idle, now: time.Now}, nil
}

// Issued is what a login or a refresh hands the client.
type Issued struct {
	Session        store.Session
	AccessToken    string
	AccessExpires  time.Time
	RefreshToken   string
	RefreshExpires time.Time // if not refreshed before
}

// Start creates a session for userID (userAgent is kept, cut to MaxUserAgent bytes of valid
// UTF-8, for the session list) and issues its first tokens.
func (s *Sessions) Start(ctx context.Context, userID, userAgent string) (Issued, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	id := ulid.Make().String()
	refresh, hash, err := s.tokens.NewRefreshToken(id)
	if err != nil {
		return Issued{}, err
	}
	sess := store.Session{ID: id, UserID: userID, RefreshHash: hash, UserAgent: cleanUserAgent(userAgent),
		CreatedAt: now, LastUsed: now}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return Issued{}, fmt.Errorf("start session: %w", err)
	}
	return s.issue(sess, refresh)
}

func (s *Sessions) issue(sess store.Session, refresh string) (Issued, error) {
	access, exp, err := s.tokens.Issue(sess.UserID, sess.ID)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Session: sess, AccessToken: access, AccessExpires: exp, RefreshToken: refresh,
		RefreshExpires: sess.LastUsed.Add(s.idle).Truncate(time.Second)}, nil
}

// Refresh rotates a refresh token: it returns new tokens for its session and kills the old
// refresh token. A refusal wraps ErrRefused and the reason: ErrInvalidToken (not a refresh
// token of this server), ErrSessionEnded (revoked, idle too long, unknown; with
// ErrRefreshReused when this call revoked it), ErrNoAccount. Any other error is the store's or
// NATS's: retry.
func (s *Sessions) Refresh(ctx context.Context, refreshToken string) (Issued, error) {
	id, hash, err := s.tokens.ParseRefreshToken(refreshToken)
	if err != nil {
		return Issued{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	sess, err := s.store.Session(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Issued{}, fmt.Errorf("%w: %w: %s", ErrRefused, ErrSessionEnded, id)
	case err != nil:
		return Issued{}, fmt.Errorf("refresh: read session %s: %w", id, err)
	case sess.Revoked():
		return Issued{}, fmt.Errorf("%w: %w: %s revoked", ErrRefused, ErrSessionEnded, id)
	case subtle.ConstantTimeCompare(sess.RefreshHash, hash) != 1:
		return Issued{}, s.reused(ctx, sess)
	}
	now := s.now().UTC()
	if now.Sub(sess.LastUsed) > s.idle {
		return Issued{}, fmt.Errorf("%w: %w: %s idle since %s", ErrRefused, ErrSessionEnded, id, sess.LastUsed.Format(time.RFC3339))
	}
	if err := s.auth.accountActive(ctx, sess.UserID); err != nil {
		return Issued{}, err
	}
	next, nextHash, err := s.tokens.NewRefreshToken(id)
	if err != nil {
		return Issued{}, err
	}
	sess, err = s.store.RotateSession(ctx, id, hash, nextHash, now)
	switch {
	case errors.Is(err, store.ErrConflict): // another refresh with this token won, or a revocation
		cur, rerr := s.store.Session(ctx, id)
		if rerr != nil {
			return Issued{}, fmt.Errorf("refresh: read session %s: %w", id, rerr)
		}
		if cur.Revoked() {
			return Issued{}, fmt.Errorf("%w: %w: %s revoked", ErrRefused, ErrSessionEnded, id)
		}
		return Issued{}, s.reused(ctx, cur)
	case err != nil:
		return Issued{}, fmt.Errorf("refresh: rotate session %s: %w", id, err)
	}
	return s.issue(sess, next)
}

// reused revokes sess, whose dead refresh token was just used, and returns the refusal.
func (s *Sessions) reused(ctx context.Context, sess store.Session) error {
	if _, err := s.Revoke(ctx, sess.ID); err != nil {
		return fmt.Errorf("refresh: revoke session %s after a reused refresh token: %w", sess.ID, err)
	}
	return fmt.Errorf("%w: %w: %w: session %s revoked", ErrRefused, ErrSessionEnded, ErrRefreshReused, sess.ID)
}

// Active lists userID's live sessions (not revoked, not idle past their lifetime), oldest first.
func (s *Sessions) Active(ctx context.Context, userID string) ([]store.Session, error) {
	all, err := s.store.Sessions(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	now := s.now()
	live := all[:0]
	for _, sess := range all {
		if !sess.Revoked() && now.Sub(sess.LastUsed) <= s.idle {
			live = append(live, sess)
		}
	}
	return live, nil
}

// Get returns one session; store.ErrNotFound if there is none.
func (s *Sessions) Get(ctx context.Context, id string) (store.Session, error) {
	return s.store.Session(ctx, id)
}

// Revoke ends a session: the store records it (from then on Authenticate refuses its access
// tokens and Refresh its refresh token), then every gateway is told to close its sockets. An
// error after the store write leaves the session revoked but perhaps not announced: the caller
// retries (revoking again is harmless and announces again). store.ErrNotFound if there is no
// such session.
func (s *Sessions) Revoke(ctx context.Context, id string) (store.Session, error) {
	sess, err := s.store.RevokeSession(ctx, id, s.now().UTC())
	if err != nil {
		return store.Session{}, fmt.Errorf("revoke session: %w", err)
	}
	if err := s.nc.Publish(streams.SessionRevokedSubject(sess.UserID, sess.ID), nil); err != nil {
		return sess, fmt.Errorf("announce revoked session %s: %w", id, err)
	}
	// The flush returns once the server has the announcement: a gateway connected then gets it,
	// and one that is not closes all its sockets when it reconnects (see the gateway).
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, announceTimeout)
		defer cancel()
	}
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return sess, fmt.Errorf("announce revoked session %s: %w", id, err)
	}
	return sess, nil
}

// RevokeAll ends every live session of userID (logout everywhere, account deletion) and
// returns how many it ended.
func (s *Sessions) RevokeAll(ctx context.Context, userID string) (int, error) {
	all, err := s.store.Sessions(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke all sessions of %s: %w", userID, err)
	}
	n := 0
	for _, sess := range all {
		if sess.Revoked() {
			continue
		}
		if _, err := s.Revoke(ctx, sess.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// cleanUserAgent cuts ua to MaxUserAgent bytes without splitting a character and drops invalid
// UTF-8 and control characters: it is shown back to the user.
func cleanUserAgent(ua string) string {
	out := make([]byte, 0, min(len(ua), MaxUserAgent))
	for _, r := range ua {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			continue
		}
		if len(out)+utf8.RuneLen(r) > MaxUserAgent {
			break
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}
