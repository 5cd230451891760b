package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrSessionEnded: the login session has ended (logged out, revoked from another device, or its
// refresh token was used twice) or idled past its lifetime. Log in again.
var ErrSessionEnded = errors.New("client: session ended; log in again")

// ErrBadCredentials: Login was refused (wrong handle or password).
var ErrBadCredentials = errors.New("client: wrong handle or password")

// Session holds the tokens of one login and keeps a valid access token at hand: Token renews
// it through POST /v1/token/refresh shortly before it expires. Refresh tokens rotate: each
// refresh returns a new one and the old one is dead, so a Session refreshes one at a time, and
// an application that persists the refresh token (to resume after a restart) saves the new one
// from OnRefresh. Two holders of one refresh token end its session at the second refresh.
//
// Use Token as Config.TokenSource so that every (re)connection of a Client gets a valid token.
// Safe for concurrent use.
type Session struct {
	api  string
	http *http.Client
	// OnRefresh, if set, is called with every new refresh token (under the Session's lock:
	// keep it quick). Set it before the first Token call.
	OnRefresh func(refreshToken string)

	mu      sync.Mutex
	id      string
	userID  string
	access  string
	renewAt time.Time // when Token refreshes: a quarter of the token's life before it expires
	refresh string
	now     func() time.Time
}

// tokensJSON is the answer of sign-up, login and refresh.
type tokensJSON struct {
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	Token        string `json:"token"`
	ExpiresAt    string `json:"expires_at"`
	RefreshToken string `json:"refresh_token"`
	SessionID    string `json:"session_id"`
}

// Login logs in over the HTTP API at apiURL (http://host:port) and returns the new session.
func Login(ctx context.Context, apiURL, handle, password string) (*Session, error) {
	s := &Session{api: strings.TrimSuffix(apiURL, "/"), http: http.DefaultClient, now: time.Now}
	body := map[string]string{"handle": handle, "password": password}
	if err := s.post(ctx, "/v1/login", body, http.StatusOK); err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	return s, nil
}

// Resume returns a session from a refresh token saved earlier (see OnRefresh); the first Token
// call refreshes it.
func Resume(apiURL, refreshToken string) *Session {
	return &Session{api: strings.TrimSuffix(apiURL, "/"), http: http.DefaultClient, refresh: refreshToken, now: time.Now}
}

// Token returns a valid access token, refreshing first when the current one is near its
// expiry. Errors: ErrSessionEnded (log in again), or a failure to reach the API (retry).
func (s *Session) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access != "" && s.now().Before(s.renewAt) {
		return s.access, nil
	}
	if s.refresh == "" {
		return "", ErrSessionEnded
	}
	if err := s.post(ctx, "/v1/token/refresh", map[string]string{"refresh_token": s.refresh}, http.StatusOK); err != nil {
		return "", fmt.Errorf("client: refresh: %w", err)
	}
	return s.access, nil
}

// ID is the session's id (as GET /v1/sessions lists it); empty before the first refresh of a
// resumed session.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// UserID is the account's id; empty before the first refresh of a resumed session.
func (s *Session) UserID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userID
}

// RefreshToken is the current refresh token: what to persist to Resume later.
func (s *Session) RefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refresh
}

// Logout ends the session (POST /v1/logout): its tokens are refused from then on and its
// sockets closed. The Session is unusable afterwards.
func (s *Session) Logout(ctx context.Context) error {
	token, err := s.Token(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api+"/v1/logout", nil)
	if err != nil {
		return fmt.Errorf("client: logout: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: logout: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("client: logout: %d %s", resp.StatusCode, raw)
	}
	s.access, s.refresh = "", ""
	return nil
}

// post sends body to path and takes the tokens of a want answer; the caller holds s.mu (or
// owns s alone). A 401 is ErrBadCredentials from login, ErrSessionEnded from refresh.
func (s *Session) post(ctx context.Context, path string, body any, want int) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	sent := s.now()
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized && path == "/v1/login":
		return fmt.Errorf("%w: %s", ErrBadCredentials, raw)
	case resp.StatusCode == http.StatusUnauthorized:
		s.access, s.refresh = "", ""
		return fmt.Errorf("%w: %s", ErrSessionEnded, raw)
	case resp.StatusCode != want:
		return fmt.Errorf("%d %s", resp.StatusCode, raw)
	}
	var t tokensJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return fmt.Errorf("decode %s: %w", raw, err)
	}
	exp, err := time.Parse(time.RFC3339, t.ExpiresAt)
	if err != nil || t.Token == "" || t.RefreshToken == "" {
		return fmt.Errorf("answer without tokens: %s", raw)
	}
	// Renew a quarter of the token's life early, at most a minute. The life is counted from
	// when the request was sent; a clock far behind the server's renews early, one far ahead
	// renews at every call: both still work.
	life := exp.Sub(sent)
	s.access, s.refresh = t.Token, t.RefreshToken
	s.renewAt = sent.Add(life - min(life/4, time.Minute))
	s.id, s.userID = t.SessionID, t.User.ID
	if s.OnRefresh != nil {
		s.OnRefresh(t.RefreshToken)
	}
	return nil
}
