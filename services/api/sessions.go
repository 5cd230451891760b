package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Sessions: a login starts one (signup and login answer sessionJSON), POST /v1/token/refresh
// rotates its tokens, GET /v1/sessions lists the caller's live ones, DELETE /v1/sessions/:id
// ends one, POST /v1/logout ends the caller's own and POST /v1/logout/all every one. Ending a
// session refuses its tokens at once and closes its sockets (auth.Sessions.Revoke).
func (s *Server) sessionRoutes(v1 fiber.Router) {
	v1.Post("/token/refresh", s.refresh)
	v1.Get("/sessions", s.authenticate, s.listSessions)
	v1.Delete("/sessions/:id", s.authenticate, s.deleteSession)
	v1.Post("/logout/all", s.authenticate, s.logoutAll)
	// POST /v1/logout is in push.go: it also forgets a device.
}

// sessionJSON is the answer of signup, login and refresh. token and expires_at are the access
// token and its expiry, as before sessions existed, so that a client that knows nothing of
// refresh keeps working until its access token expires.
type sessionJSON struct {
	User             userJSON `json:"user"`
	Token            string   `json:"token"`
	ExpiresAt        string   `json:"expires_at"` // RFC 3339, UTC
	RefreshToken     string   `json:"refresh_token"`
	RefreshExpiresAt string   `json:"refresh_expires_at"` // RFC 3339, UTC: unless refreshed before
	SessionID        string   `json:"session_id"`
}

// issued answers a login or refresh.
func issued(c *fiber.Ctx, status int, u store.User, is auth.Issued) error {
	return c.Status(status).JSON(sessionJSON{
		User: userOut(u), Token: is.AccessToken, ExpiresAt: rfc3339(is.AccessExpires),
		RefreshToken: is.RefreshToken, RefreshExpiresAt: rfc3339(is.RefreshExpires), SessionID: is.Session.ID,
	})
}

// session starts a session for u, named by the request's User-Agent, and answers it.
func (s *Server) session(c *fiber.Ctx, status int, u store.User) error {
	is, err := s.sessions.Start(c.UserContext(), u.ID, c.Get(fiber.HeaderUserAgent))
	if err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	return issued(c, status, u, is)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refresh: POST /v1/token/refresh {refresh_token} -> 200 sessionJSON with a new access token
// and a new refresh token; the one sent is dead from then on. 401 session_ended for any refused
// refresh token; one that was already rotated away also ends its session (reuse detection).
func (s *Server) refresh(c *fiber.Ctx) error {
	if err := s.limit(s.limits.refreshAddr, reasonRefreshAddr, s.clientAddr(c)); err != nil {
		return err
	}
	var req refreshRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "refresh_token is required")
	}
	ctx := c.UserContext()
	is, err := s.sessions.Refresh(ctx, req.RefreshToken)
	switch {
	case errors.Is(err, auth.ErrRefreshReused):
		s.log.Info("refresh token reused; session revoked", zap.String("addr", s.clientAddr(c)), zap.Error(err))
		return errorf(http.StatusUnauthorized, CodeSessionEnded, "refresh token already used; the session is revoked, log in again")
	case errors.Is(err, auth.ErrRefused):
		return errorf(http.StatusUnauthorized, CodeSessionEnded, "invalid refresh token or ended session; log in again")
	case err != nil:
		return fmt.Errorf("refresh: %w", err)
	}
	u, err := s.store.UserByID(ctx, is.Session.UserID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusUnauthorized, CodeSessionEnded, "no such account")
		}
		return fmt.Errorf("refresh: user by id: %w", err)
	}
	return issued(c, http.StatusOK, u, is)
}

type sessionInfoJSON struct {
	ID         string `json:"id"`
	UserAgent  string `json:"user_agent"`
	CreatedAt  string `json:"created_at"`   // RFC 3339, UTC
	LastUsedAt string `json:"last_used_at"` // RFC 3339, UTC: the login or the latest refresh
	Current    bool   `json:"current"`      // the session of the token making this request
}

// listSessions: GET /v1/sessions -> {sessions: [...]}: the caller's live sessions, oldest first.
func (s *Server) listSessions(c *fiber.Ctx) error {
	live, err := s.sessions.Active(c.UserContext(), callerID(c))
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	out := make([]sessionInfoJSON, len(live))
	for i, v := range live {
		out[i] = sessionInfoJSON{ID: v.ID, UserAgent: v.UserAgent, CreatedAt: rfc3339(v.CreatedAt),
			LastUsedAt: rfc3339(v.LastUsed), Current: v.ID == callerSession(c)}
	}
	return c.JSON(fiber.Map{"sessions": out})
}

// deleteSession: DELETE /v1/sessions/:id -> 204: ends one of the caller's sessions (the current
// one too); its tokens are refused and its sockets closed. Ending an ended one succeeds again.
// 404 session_not_found for an id that is not a session of the caller's.
func (s *Server) deleteSession(c *fiber.Ctx) error {
	id := c.Params("id")
	notFound := errorf(http.StatusNotFound, CodeSessionNotFound, "no such session")
	if !streams.ValidToken(id) {
		return notFound
	}
	ctx := c.UserContext()
	sess, err := s.sessions.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound
	case err != nil:
		return fmt.Errorf("delete session: %w", err)
	case sess.UserID != callerID(c):
		return notFound
	}
	if _, err := s.sessions.Revoke(ctx, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// logoutAll: POST /v1/logout/all -> 204: ends every session of the caller's, this one included
// (logout everywhere: a lost phone, a changed password).
func (s *Server) logoutAll(c *fiber.Ctx) error {
	if _, err := s.sessions.RevokeAll(c.UserContext(), callerID(c)); err != nil {
		return fmt.Errorf("logout everywhere: %w", err)
	}
	return c.SendStatus(http.StatusNoContent)
}

// callerSession is the session of the authenticated request; only valid behind authenticate.
func callerSession(c *fiber.Ctx) string {
	sid, _ := c.Locals(sessionKey{}).(string)
	return sid
}

type sessionKey struct{}
