package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// api is a small natter HTTP API for the Session's tests: login and refresh answer tokens that
// expire life after the test's clock; refresh tokens rotate, and a used one is refused with 401
// like the real API's.
type api struct {
	srv *httptest.Server

	mu        sync.Mutex
	now       time.Time
	life      time.Duration
	refreshes int
	valid     string // the one live refresh token
	issued    int
}

func newAPI(t *testing.T, life time.Duration) *api {
	a := &api{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), life: life, valid: "r0"}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"code":"invalid_json"}`, http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		switch r.URL.Path {
		case "/v1/login":
			if body["password"] != "secret" {
				http.Error(w, `{"code":"bad_credentials"}`, http.StatusUnauthorized)
				return
			}
		case "/v1/token/refresh":
			a.refreshes++
			if body["refresh_token"] != a.valid {
				http.Error(w, `{"code":"session_ended"}`, http.StatusUnauthorized)
				return
			}
		default:
			http.NotFound(w, r)
			return
		}
		a.issued++
		a.valid = "r" + strconv.Itoa(a.issued)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"user": map[string]string{"id": "u1"}, "token": "a" + strconv.Itoa(a.issued), "refresh_token": a.valid,
			"expires_at": a.now.Add(a.life).Format(time.RFC3339Nano), "session_id": "s1",
		})
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *api) clock() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

func (a *api) advance(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = a.now.Add(d)
}

func (a *api) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refreshes
}

// Token refreshes a quarter of the token's life before it expires, at most a minute before;
// until then it hands out the token it has. Every new refresh token reaches OnRefresh.
func TestSessionRenewsTheTokenShortlyBeforeExpiry(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		life, early time.Duration
	}{{time.Hour, time.Minute}, {20 * time.Second, 5 * time.Second}} {
		a := newAPI(t, tc.life)
		s := Resume(a.srv.URL, "r0")
		s.now = a.clock
		var saved []string
		s.OnRefresh = func(r string) { saved = append(saved, r) }
		tok, err := s.Token(ctx)
		if err != nil || tok != "a1" || a.count() != 1 || s.UserID() != "u1" || s.ID() != "s1" {
			t.Fatalf("life %v: first Token %q %v after %d refreshes (user %q session %q)", tc.life, tok, err, a.count(), s.UserID(), s.ID())
		}
		a.advance(tc.life - tc.early - time.Millisecond)
		if tok, _ := s.Token(ctx); tok != "a1" || a.count() != 1 {
			t.Errorf("life %v: just before the renewal: %q after %d refreshes, want a1 after 1", tc.life, tok, a.count())
		}
		a.advance(2 * time.Millisecond)
		if tok, _ := s.Token(ctx); tok != "a2" || a.count() != 2 {
			t.Errorf("life %v: just after the renewal time: %q after %d refreshes, want a2 after 2", tc.life, tok, a.count())
		}
		if len(saved) != 2 || saved[1] != "r2" || s.RefreshToken() != "r2" {
			t.Errorf("life %v: OnRefresh got %v, refresh token %q; want [r1 r2], r2", tc.life, saved, s.RefreshToken())
		}
	}
}

// A refused refresh (the token was used elsewhere, or the session was revoked) ends the
// session: ErrSessionEnded, now and on every later call, without asking the API again.
func TestRefusedRefreshEndsTheSession(t *testing.T) {
	a := newAPI(t, time.Hour)
	s := Resume(a.srv.URL, "r-stale")
	s.now = a.clock
	for i := range 2 {
		if _, err := s.Token(context.Background()); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("call %d: %v, want ErrSessionEnded", i, err)
		}
	}
	if a.count() != 1 || s.RefreshToken() != "" {
		t.Errorf("%d refreshes, refresh token %q; want 1, none", a.count(), s.RefreshToken())
	}
}

// Login with a wrong password is ErrBadCredentials; with the right one the session holds a token
// without a refresh.
func TestLogin(t *testing.T) {
	a := newAPI(t, time.Hour)
	a.now = time.Now() // Login's session reads the real clock
	ctx := context.Background()
	if _, err := Login(ctx, a.srv.URL+"/", "ann", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v, want ErrBadCredentials", err)
	}
	s, err := Login(ctx, a.srv.URL, "ann", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Token(ctx); err != nil || tok == "" || a.count() != 0 {
		t.Errorf("token after login %q %v, %d refreshes; want one, none", tok, err, a.count())
	}
}
