package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// Account limits.
const (
	MinHandle      = protocol.MinHandle
	MaxHandle      = protocol.MaxHandle
	MinPassword    = 8                     // bytes
	MaxPassword    = auth.MaxPasswordBytes // bytes: bcrypt reads no further; login refuses longer ones too
	MaxDisplayName = 64                    // code points
)

// userJSON is a user as clients see it; never the password hash.
type userJSON struct {
	ID          string `json:"id"`
	Handle      string `json:"handle"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"` // RFC 3339, UTC
}

func userOut(u store.User) userJSON {
	return userJSON{ID: u.ID, Handle: u.Handle, DisplayName: u.DisplayName, CreatedAt: rfc3339(u.CreatedAt)}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

type signupRequest struct {
	Handle      string `json:"handle"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

// signup: POST /v1/signup -> 201 sessionJSON: the account and its first session.
func (s *Server) signup(c *fiber.Ctx) error {
	if err := s.limit(s.limits.signupAddr, reasonSignupAddr, s.clientAddr(c)); err != nil {
		return err
	}
	var req signupRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	handle, ok := normalizeHandle(req.Handle)
	if !ok {
		return errorf(http.StatusBadRequest, CodeInvalidHandle, "handle must be %d-%d characters of a-z, 0-9 and _", MinHandle, MaxHandle)
	}
	if n := len(req.Password); n < MinPassword || n > MaxPassword {
		return errorf(http.StatusBadRequest, CodeInvalidPassword, "password must be %d-%d bytes", MinPassword, MaxPassword)
	}
	name := req.DisplayName
	if name == "" {
		name = handle
	}
	if err := validateDisplayName(name); err != nil {
		return err
	}
	if err := s.limit(s.limits.handle, reasonHandle, handle); err != nil {
		return err
	}
	// Refuse a taken handle before paying for bcrypt; CreateUser still decides races.
	ctx := c.UserContext()
	switch _, err := s.store.UserByHandle(ctx, handle); {
	case err == nil:
		return errHandleTaken(handle)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("signup: user by handle: %w", err)
	}
	hash, err := s.hasher.Hash(ctx, req.Password)
	if err != nil {
		return s.hashError(err, "signup")
	}
	u := store.User{
		ID: ulid.Make().String(), Handle: handle, DisplayName: name, PasswordHash: hash,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	// The account's first event claims its handle: expected last subject sequence 0 lets one
	// sign-up per handle onto the stream, ever, whichever API instance takes it.
	ev := streams.StateEvent{Kind: streams.StateAccountCreated, At: u.CreatedAt.UnixMilli(), Account: &streams.AccountState{
		UserID: u.ID, Handle: u.Handle, DisplayName: u.DisplayName, PasswordHash: string(u.PasswordHash)}}
	switch _, err := projection.Record(ctx, s.js, s.store, ev, jetstream.WithExpectLastSequencePerSubject(0)); {
	case natsx.IsWrongLastSequence(err), errors.Is(err, store.ErrConflict):
		return errHandleTaken(handle)
	case err != nil:
		return fmt.Errorf("signup: %w", err)
	}
	return s.session(c, http.StatusCreated, u)
}

func errHandleTaken(handle string) error {
	return errorf(http.StatusConflict, CodeHandleTaken, "handle %q is taken", handle)
}

type loginRequest struct {
	Handle   string `json:"handle"`
	Password string `json:"password"`
}

// login: POST /v1/login -> 200 sessionJSON: a new session. A wrong handle and a wrong password
// get the same answer after the same bcrypt work. A password over MaxPassword gets that answer
// too (auth.CheckPassword matches none), so no longer password passes for its first 72 bytes.
//
// Limits, in order: logins per address, attempts per handle, and failed logins per handle
// (Limits.LoginFailures within Limits.FailureWindow); all apply to handles with no account
// alike, so a 429 tells nothing about whether an account exists.
func (s *Server) login(c *fiber.Ctx) error {
	if err := s.limit(s.limits.loginAddr, reasonLoginAddr, s.clientAddr(c)); err != nil {
		return err
	}
	var req loginRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Handle == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "handle and password are required")
	}
	badCredentials := errorf(http.StatusUnauthorized, CodeBadCredentials, "wrong handle or password")
	ctx := c.UserContext()
	handle, ok := normalizeHandle(req.Handle)
	if !ok {
		if err := s.hasher.Check(ctx, s.dummyHash(), req.Password); err != nil && !errors.Is(err, auth.ErrBadPassword) {
			return s.hashError(err, "login")
		}
		return badCredentials
	}
	if err := s.limit(s.limits.handle, reasonHandle, handle); err != nil {
		return err
	}
	if d := s.limits.failures.Begin(handle, s.now()); d > 0 {
		return s.tooMany(reasonLoginFailures, handle, d)
	}
	hash := s.dummyHash()
	u, err := s.store.UserByHandle(ctx, handle)
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, store.ErrNotFound):
		s.limits.failures.Undo(handle)
		return fmt.Errorf("login: user by handle: %w", err)
	}
	switch err := s.hasher.Check(ctx, hash, req.Password); {
	case errors.Is(err, auth.ErrBadPassword):
		return badCredentials
	case err != nil:
		s.limits.failures.Undo(handle)
		return s.hashError(err, "login")
	case u.ID == "": // no such account: the dummy hash matched the password it was made of
		return badCredentials
	}
	s.limits.failures.Succeeded(handle)
	return s.session(c, http.StatusOK, u)
}

// authenticate requires "Authorization: Bearer <token>" with a token auth.Authenticator accepts
// (the gateway's upgrade makes the same check) and stores the caller's user id for callerID.
// Writes (any method but GET, HEAD, OPTIONS) also pass the per-address write limit before the
// token check and the per-account one after it.
func (s *Server) authenticate(c *fiber.Ctx) error {
	token, ok := auth.BearerToken(c.Get(fiber.HeaderAuthorization))
	if !ok {
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "a bearer token is required")
	}
	if err := s.limitWrite(c); err != nil {
		return err
	}
	claims, err := s.auth.Authenticate(c.UserContext(), token)
	switch {
	case errors.Is(err, auth.ErrNoAccount):
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "no such account")
	case errors.Is(err, auth.ErrSessionEnded):
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "the session has ended; log in again")
	case errors.Is(err, auth.ErrRefused):
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "invalid or expired token")
	case err != nil:
		return err // the store did not answer: writeError logs it and answers 503 or 500
	}
	c.Locals(userKey{}, claims.UserID)
	c.Locals(sessionKey{}, claims.SessionID)
	if isWrite(c) {
		if err := s.limit(s.limits.writeAccount, reasonWriteAccount, claims.UserID); err != nil {
			return err
		}
	}
	return c.Next()
}

// callerID is the authenticated user; only valid behind authenticate.
func callerID(c *fiber.Ctx) string {
	uid, _ := c.Locals(userKey{}).(string)
	return uid
}

type userEnvelope struct {
	User userJSON `json:"user"`
}

// getMe: GET /v1/me -> {user}.
func (s *Server) getMe(c *fiber.Ctx) error {
	u, err := s.me(c)
	if err != nil {
		return err
	}
	return c.JSON(userEnvelope{userOut(u)})
}

func (s *Server) me(c *fiber.Ctx) (store.User, error) {
	u, err := s.store.UserByID(c.UserContext(), callerID(c))
	switch {
	case errors.Is(err, store.ErrNotFound): // a valid token for an account that is gone
		return store.User{}, errorf(http.StatusUnauthorized, CodeUnauthorized, "no such account")
	case err != nil:
		return store.User{}, fmt.Errorf("me: user by id: %w", err)
	}
	return u, nil
}

type patchMeRequest struct {
	DisplayName *string `json:"display_name"`
}

// patchMe: PATCH /v1/me {display_name} -> {user}. Absent fields are left alone.
func (s *Server) patchMe(c *fiber.Ctx) error {
	var req patchMeRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.DisplayName != nil {
		if err := validateDisplayName(*req.DisplayName); err != nil {
			return err
		}
		u, err := s.me(c)
		if err != nil {
			return err
		}
		ev := streams.StateEvent{Kind: streams.StateProfileUpdated, At: time.Now().UnixMilli(),
			Account: &streams.AccountState{UserID: u.ID, Handle: u.Handle, DisplayName: *req.DisplayName}}
		if _, err := projection.Record(c.UserContext(), s.js, s.store, ev); err != nil {
			return fmt.Errorf("patch me: %w", err)
		}
	}
	return s.getMe(c)
}

type deleteMeRequest struct {
	Password string `json:"password"`
}

// deleteMe: DELETE /v1/me {password} -> 204: deletes the caller's account for good, after
// checking its password (a stolen token alone cannot delete an account). The account_deleted
// event makes the account a tombstone: its tokens are refused from then on, by the API and the
// gateways (auth.Authenticator finds no account), its profile is gone and its handle is never
// given to anyone else, its devices and push tokens are removed, its mute settings deleted and
// its open sockets closed. Its messages stay in their conversations under its user id.
func (s *Server) deleteMe(c *fiber.Ctx) error {
	var req deleteMeRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Password == "" {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "password is required")
	}
	u, err := s.me(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	switch err := s.hasher.Check(ctx, u.PasswordHash, req.Password); {
	case errors.Is(err, auth.ErrBadPassword):
		return errorf(http.StatusUnauthorized, CodeBadCredentials, "wrong password")
	case err != nil:
		return s.hashError(err, "delete account")
	}
	ev := streams.StateEvent{Kind: streams.StateAccountDeleted, At: time.Now().UnixMilli(),
		Account: &streams.AccountState{UserID: u.ID, Handle: u.Handle}}
	if _, err := projection.Record(ctx, s.js, s.store, ev); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	// Gateways close the account's sockets on this announcement (they do not read STATE).
	nc := s.js.Conn()
	if err := nc.Publish(streams.AccountDeletedSubject(u.ID), nil); err != nil {
		return fmt.Errorf("delete account: announce: %w", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("delete account: announce: %w", err)
	}
	if err := s.unmuteAll(ctx, u.ID); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	// Its tokens are refused already (no account); ending its sessions refuses its refresh
	// tokens by the session too and leaves no live session behind.
	if _, err := s.sessions.RevokeAll(ctx, u.ID); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	s.log.Info("account deleted", zap.String("user", u.ID))
	return c.SendStatus(http.StatusNoContent)
}

// userByID: GET /v1/users/:id -> {user}, 404 user_not_found.
func (s *Server) userByID(c *fiber.Ctx) error {
	id := c.Params("id")
	if !streams.ValidToken(id) {
		return errorf(http.StatusNotFound, CodeUserNotFound, "no such user")
	}
	return s.userAnswer(c, func() (store.User, error) { return s.store.UserByID(c.UserContext(), id) })
}

// userByHandle: GET /v1/users?handle=x -> {user} (handle matched case-insensitively),
// 404 user_not_found.
func (s *Server) userByHandle(c *fiber.Ctx) error {
	raw := c.Query("handle")
	if raw == "" {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "query parameter handle is required")
	}
	handle, ok := normalizeHandle(raw)
	if !ok {
		return errorf(http.StatusBadRequest, CodeInvalidHandle, "handle must be %d-%d characters of a-z, 0-9 and _", MinHandle, MaxHandle)
	}
	return s.userAnswer(c, func() (store.User, error) { return s.store.UserByHandle(c.UserContext(), handle) })
}

func (s *Server) userAnswer(c *fiber.Ctx, get func() (store.User, error)) error {
	u, err := get()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, CodeUserNotFound, "no such user")
	case err != nil:
		return fmt.Errorf("get user: %w", err)
	}
	return c.JSON(userEnvelope{userOut(u)})
}

// normalizeHandle case-folds h and checks it (protocol.ValidHandle): MinHandle-MaxHandle bytes
// of [a-z0-9_] after folding. Only ASCII letters fold (strings.ToLower would turn the Kelvin sign
// into "k").
func normalizeHandle(h string) (string, bool) {
	b := []byte(h)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	if folded := string(b); protocol.ValidHandle(folded) {
		return folded, true
	}
	return "", false
}

// validateDisplayName: 1-MaxDisplayName code points of valid UTF-8, not blank, without control
// characters, bidirectional overrides (which could make a name display as another) or U+FFFD
// (what encoding/json leaves of a lone surrogate escape).
func validateDisplayName(name string) error {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, CodeInvalidDisplayName, "display_name %s", why)
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxDisplayName {
		return bad(fmt.Sprintf("must be 1-%d characters", MaxDisplayName))
	}
	if !utf8.ValidString(name) {
		return bad("is not valid UTF-8")
	}
	if strings.TrimSpace(name) == "" {
		return bad("is blank")
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			return bad(fmt.Sprintf("contains the forbidden character %U", r))
		}
	}
	return nil
}
