package api

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
)

// refreshAnswer is the part of a sessionJSON the tests read.
type refreshAnswer struct {
	User         userJSON `json:"user"`
	Token        string   `json:"token"`
	RefreshToken string   `json:"refresh_token"`
	SessionID    string   `json:"session_id"`
}

func (e *env) refresh(t *testing.T, refreshToken string, wantStatus int) refreshAnswer {
	t.Helper()
	var a refreshAnswer
	e.call(t, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": refreshToken}, wantStatus, &a)
	return a
}

type sessionsAnswer struct {
	Sessions []sessionInfoJSON `json:"sessions"`
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var first refreshAnswer
	e.call(t, "POST", "/v1/signup", "", map[string]string{"handle": "alice", "password": "correct horse"}, http.StatusCreated, &first)
	if first.RefreshToken == "" || first.SessionID == "" {
		t.Fatalf("sign-up gave no refresh token or session: %+v", first)
	}
	second := e.refresh(t, first.RefreshToken, http.StatusOK)
	if second.SessionID != first.SessionID || second.RefreshToken == first.RefreshToken || second.User.ID != first.User.ID {
		t.Fatalf("refresh: %+v after %+v, want new tokens of the same session", second, first)
	}
	e.call(t, "GET", "/v1/me", second.Token, nil, http.StatusOK, nil)
	e.call(t, "GET", "/v1/me", first.Token, nil, http.StatusOK, nil) // access tokens live out their ttl

	// The first refresh token again: a copy is in other hands. The session ends for everyone.
	e.wantError(t, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": first.RefreshToken}, http.StatusUnauthorized, CodeSessionEnded)
	e.wantError(t, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": second.RefreshToken}, http.StatusUnauthorized, CodeSessionEnded)
	for _, tok := range []string{first.Token, second.Token} {
		e.wantError(t, "GET", "/v1/me", tok, nil, http.StatusUnauthorized, CodeUnauthorized)
	}
	e.wantError(t, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": "nr1.nothing"}, http.StatusUnauthorized, CodeSessionEnded)
	e.wantError(t, "POST", "/v1/token/refresh", "", map[string]string{}, http.StatusBadRequest, CodeInvalidRequest)
}

// An expired access token is refused; the refresh token of its session trades for a new one.
func TestExpiredAccessTokenRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, _ := e.user(t, "alice")
	is := e.session(t, u.ID)
	expiring, err := auth.NewTokens(testSecret, time.Nanosecond) // expired when issued
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := expiring.Issue(u.ID, is.Session.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.wantError(t, "GET", "/v1/me", expired, nil, http.StatusUnauthorized, CodeUnauthorized)
	fresh := e.refresh(t, is.RefreshToken, http.StatusOK)
	e.call(t, "GET", "/v1/me", fresh.Token, nil, http.StatusOK, nil)
}

func TestSessionsListAndEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, _ := e.user(t, "alice")
	_, bobToken := e.user(t, "bob")
	phone := e.session(t, alice.ID)
	laptop := e.session(t, alice.ID)

	var list sessionsAnswer
	e.call(t, "GET", "/v1/sessions", laptop.AccessToken, nil, http.StatusOK, &list)
	if len(list.Sessions) != 3 { // e.user's, phone, laptop
		t.Fatalf("sessions: %+v, want 3", list.Sessions)
	}
	for _, s := range list.Sessions {
		if s.Current != (s.ID == laptop.Session.ID) || s.UserAgent != "api test" || s.CreatedAt == "" || s.LastUsedAt == "" {
			t.Errorf("session %+v (current is %s)", s, laptop.Session.ID)
		}
	}

	// Bob cannot end Alice's session, nor tell it from none.
	e.wantError(t, "DELETE", "/v1/sessions/"+phone.Session.ID, bobToken, nil, http.StatusNotFound, CodeSessionNotFound)
	e.wantError(t, "DELETE", "/v1/sessions/01JNOSUCHSESSION0000000000", bobToken, nil, http.StatusNotFound, CodeSessionNotFound)
	e.wantError(t, "DELETE", "/v1/sessions/not.an.id", bobToken, nil, http.StatusNotFound, CodeSessionNotFound)
	e.call(t, "GET", "/v1/me", phone.AccessToken, nil, http.StatusOK, nil)

	// Alice ends her phone's session from her laptop.
	e.call(t, "DELETE", "/v1/sessions/"+phone.Session.ID, laptop.AccessToken, nil, http.StatusNoContent, nil)
	e.call(t, "DELETE", "/v1/sessions/"+phone.Session.ID, laptop.AccessToken, nil, http.StatusNoContent, nil) // again: still ended
	e.wantError(t, "GET", "/v1/me", phone.AccessToken, nil, http.StatusUnauthorized, CodeUnauthorized)
	e.wantError(t, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": phone.RefreshToken}, http.StatusUnauthorized, CodeSessionEnded)
	e.call(t, "GET", "/v1/sessions", laptop.AccessToken, nil, http.StatusOK, &list)
	if len(list.Sessions) != 2 {
		t.Fatalf("sessions after ending one: %+v, want 2", list.Sessions)
	}

	// Logout ends the caller's own session only.
	e.call(t, "POST", "/v1/logout", laptop.AccessToken, nil, http.StatusNoContent, nil)
	e.wantError(t, "GET", "/v1/me", laptop.AccessToken, nil, http.StatusUnauthorized, CodeUnauthorized)
	e.call(t, "GET", "/v1/sessions", bobToken, nil, http.StatusOK, nil)
}

func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, first := e.user(t, "alice")
	_, bobToken := e.user(t, "bob")
	sessions := []auth.Issued{e.session(t, alice.ID), e.session(t, alice.ID)}

	e.call(t, "POST", "/v1/logout/all", first, nil, http.StatusNoContent, nil)
	e.wantError(t, "GET", "/v1/me", first, nil, http.StatusUnauthorized, CodeUnauthorized)
	for _, is := range sessions {
		e.wantError(t, "GET", "/v1/me", is.AccessToken, nil, http.StatusUnauthorized, CodeUnauthorized)
		e.wantError(t, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": is.RefreshToken}, http.StatusUnauthorized, CodeSessionEnded)
	}
	e.call(t, "GET", "/v1/me", bobToken, nil, http.StatusOK, nil)
	// A new login works.
	again := e.session(t, alice.ID)
	var list sessionsAnswer
	e.call(t, "GET", "/v1/sessions", again.AccessToken, nil, http.StatusOK, &list)
	if len(list.Sessions) != 1 || !list.Sessions[0].Current {
		t.Fatalf("sessions after logging out everywhere and in again: %+v", list.Sessions)
	}
}

func TestRefreshIsRateLimitedPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *Config) {
		trustLoopback(c)
		c.Limits.RefreshAddr = Rate{N: 2, Per: time.Hour}
	}, nil)
	u, _ := e.user(t, "alice")
	tok := e.session(t, u.ID).RefreshToken
	refresh := func(addr string) answer {
		return e.from(t, addr, "POST", "/v1/token/refresh", "", map[string]string{"refresh_token": tok})
	}
	for range 2 {
		a := refresh("198.51.100.1")
		var r refreshAnswer
		if err := json.Unmarshal(a.body, &r); err != nil || a.status != http.StatusOK {
			t.Fatalf("refresh within the limit: %d %s", a.status, a.body)
		}
		tok = r.RefreshToken
	}
	wantLimited(t, "refresh over the limit", refresh("198.51.100.1"), 1800)
	if a := refresh("198.51.100.2"); a.status != http.StatusOK {
		t.Fatalf("refresh from another address: %d %s", a.status, a.body)
	}
	if got := e.rejected(t, reasonRefreshAddr); got != 1 {
		t.Fatalf("rejected_total{refresh_addr} = %v, want 1", got)
	}
}
