package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// ErrRefused is wrapped by every refusal Authenticate returns (ErrInvalidToken, ErrNoAccount,
// ErrSessionEnded), so that callers need one branch to tell "log in again" from "the check
// itself failed".
var ErrRefused = errors.New("access refused")

// ErrNoAccount: the token is valid but names an account that does not exist (deleted, or the
// store was wiped since the token was issued).
var ErrNoAccount = errors.New("no such account")

// ErrSessionEnded: the token's session was revoked (logout, a revoked session, a reused refresh
// token), has been idle past its lifetime, or does not exist.
var ErrSessionEnded = errors.New("session ended")

// Accounts is the store read Authenticator needs; store.Store has it.
type Accounts interface {
	// UserByID returns the account, or an error wrapping store.ErrNotFound (a deleted account
	// is not found).
	UserByID(ctx context.Context, id string) (store.User, error)
	// Session returns a session, or an error wrapping store.ErrNotFound.
	Session(ctx context.Context, id string) (store.Session, error)
}

// Authenticator decides whether an access token may act. It is the one token check of natter:
// the API's authenticated routes and the gateway's WebSocket upgrade both call Authenticate and
// nothing else, and read the token out of a request with BearerToken, so a stricter rule is
// added here, once, and holds for both. Safe for concurrent use.
type Authenticator struct {
	tokens   *Tokens
	accounts Accounts
}

// NewAuthenticator checks tokens with tokens and sessions and accounts with accounts.
func NewAuthenticator(tokens *Tokens, accounts Accounts) *Authenticator {
	return &Authenticator{tokens: tokens, accounts: accounts}
}

// Authenticate returns the claims of token if it may act:
//   - the token verifies (signature, algorithm, issuer, expiry; see Tokens.Verify);
//   - its subject and session are well-formed ids;
//   - the session exists, belongs to the subject and is not revoked;
//   - the account exists (a deleted account does not).
//
// A refusal wraps ErrRefused and the reason (ErrInvalidToken, ErrSessionEnded, ErrNoAccount);
// answer it with 401. Any other error means the store could not be read: the token is neither
// accepted nor refused, and the caller answers "unavailable, retry".
//
// The check holds when it is made. A socket lives longer than the check at its upgrade: the
// gateway closes it when the session is revoked (see Sessions.Revoke).
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Claims, error) {
	claims, err := a.tokens.Verify(token)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// Ids go into subjects and keys: never trust one that could not have been issued here.
	if !streams.ValidToken(claims.UserID) {
		return Claims{}, fmt.Errorf("%w: %w: subject is not a user id", ErrRefused, ErrInvalidToken)
	}
	if !streams.ValidToken(claims.SessionID) {
		// Tokens issued before sessions existed carry none: their holders log in again.
		return Claims{}, fmt.Errorf("%w: %w: no session", ErrRefused, ErrInvalidToken)
	}
	sess, err := a.accounts.Session(ctx, claims.SessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Claims{}, fmt.Errorf("%w: %w: %s", ErrRefused, ErrSessionEnded, claims.SessionID)
	case err != nil:
		return Claims{}, fmt.Errorf("authenticate: read session %s: %w", claims.SessionID, err)
	case sess.UserID != claims.UserID:
		return Claims{}, fmt.Errorf("%w: %w: session of another account", ErrRefused, ErrInvalidToken)
	case sess.Revoked():
		return Claims{}, fmt.Errorf("%w: %w: %s revoked", ErrRefused, ErrSessionEnded, claims.SessionID)
	}
	if err := a.accountActive(ctx, claims.UserID); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// accountActive refuses an account the store does not have: never created, or deleted (the
// store answers a deleted account not found).
func (a *Authenticator) accountActive(ctx context.Context, userID string) error {
	if _, err := a.accounts.UserByID(ctx, userID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %w: %s", ErrRefused, ErrNoAccount, userID)
		}
		return fmt.Errorf("authenticate: read account %s: %w", userID, err)
	}
	return nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header value (scheme
// matched without regard to case, surrounding blanks trimmed), and false if the value is not
// one.
func BearerToken(authorization string) (string, bool) {
	scheme, token, _ := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
