package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// ErrRefused is wrapped by every refusal Authenticate returns (ErrInvalidToken, ErrNoAccount, and
// any reason a later check adds), so that callers need one branch to tell "log in again" from
// "the check itself failed".
var ErrRefused = errors.New("access refused")

// ErrNoAccount: the token is valid but names an account that does not exist (deleted, or the
// store was wiped since the token was issued).
var ErrNoAccount = errors.New("no such account")

// Accounts is the store read Authenticator needs; store.Store has it.
type Accounts interface {
	// UserByID returns the account, or an error wrapping store.ErrNotFound.
	UserByID(ctx context.Context, id string) (store.User, error)
}

// Authenticator decides whether an access token may act. It is the one token check of natter:
// the API's authenticated routes and the gateway's WebSocket upgrade both call Authenticate and
// nothing else, so a stricter rule (revoked sessions, deleted or suspended accounts) is added
// here, once, and holds for both. Safe for concurrent use.
type Authenticator struct {
	tokens   *Tokens
	accounts Accounts
}

// NewAuthenticator checks tokens with tokens and accounts with accounts.
func NewAuthenticator(tokens *Tokens, accounts Accounts) *Authenticator {
	return &Authenticator{tokens: tokens, accounts: accounts}
}

// Authenticate returns the claims of token if it may act: it verifies the token (signature,
// algorithm, issuer, expiry; see Tokens.Verify), requires its subject to be a well-formed id,
// and requires the account to exist in the store.
//
// A refusal wraps ErrRefused and the reason (ErrInvalidToken, ErrNoAccount); answer it with 401.
// Any other error means the store could not be read: the token is neither accepted nor refused,
// and the caller answers "unavailable, retry". Revocation checks belong here too, after the
// account read, so that both callers get them at once.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Claims, error) {
	claims, err := a.tokens.Verify(token)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// Ids go into subjects and keys: never trust one that could not have been issued here.
	if !streams.ValidToken(claims.UserID) {
		return Claims{}, fmt.Errorf("%w: %w: subject is not a user id", ErrRefused, ErrInvalidToken)
	}
	if _, err := a.accounts.UserByID(ctx, claims.UserID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Claims{}, fmt.Errorf("%w: %w: %s", ErrRefused, ErrNoAccount, claims.UserID)
		}
		return Claims{}, fmt.Errorf("authenticate: read account %s: %w", claims.UserID, err)
	}
	return claims, nil
}
