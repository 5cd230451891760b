// Package apptest boots a whole natter process in-process for tests: embedded NATS on a random
// port, Pebble in a temporary directory, every component on 127.0.0.1:0. It also gives tests small
// HTTP and WebSocket clients that speak the real protocol.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/app"
)

// System is a running natter.
type System struct {
	T       testing.TB
	Config  app.Config
	App     *fx.App
	Run     *app.Running
	APIURL  string
	WSURL   string
	NATSURL string
	// HTTP is the client of Do, SignUp and Direct; nil: http.DefaultClient. A test of an API
	// served over TLS sets one that trusts its CA.
	HTTP *http.Client

	stop func()
}

// Option adjusts the configuration before start.
type Option func(*app.Config)

// Start boots natter and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *System {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.NATS.Port = -1
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.MetricsAddr = ""
	cfg.SpareProc = false // it changes GOMAXPROCS for the whole test process
	cfg.API.PasswordCost = auth.MinPasswordCost
	cfg.API.Limits = api.NoLimits() // tests sign up and write from 127.0.0.1 faster than any client should
	cfg.API.HashWait = time.Minute  // a busy test machine queues for bcrypt rather than answering 503
	// Nor are the gateway's per-address limits: many sockets from 127.0.0.1.
	cfg.Gateway.LiftAddrLimits()
	// Long runs (make test-invariant) use their sign-up tokens for longer than the default 15
	// minutes; tests of expiry and refresh set a short AccessTTL themselves.
	cfg.AccessTTL = 2 * time.Hour
	for _, o := range opts {
		o(&cfg)
	}
	return StartConfig(t, cfg)
}

// StartConfig boots natter with exactly cfg.
func StartConfig(t testing.TB, cfg app.Config) *System {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	fxApp, run, err := app.New(cfg, log)
	if err != nil {
		t.Fatalf("build natter: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fxApp.Start(ctx); err != nil {
		t.Fatalf("start natter: %v", err)
	}
	s := &System{T: t, Config: cfg, App: fxApp, Run: run, NATSURL: run.NATSURL()}
	if run.API != nil {
		s.APIURL = run.API.URL()
	}
	if run.Gateway != nil {
		s.WSURL = run.Gateway.URL()
	}
	// Every Stop waits for the one stop to finish: a test's own Stop may still be running when
	// the cleanup's comes, and the data directory must not be removed under it.
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := fxApp.Stop(ctx); err != nil {
				t.Errorf("stop natter: %v", err)
			}
		})
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the system (also done automatically at the end of the test).
func (s *System) Stop() { s.stop() }

// User is a signed-up account.
type User struct {
	ID           string `json:"id"`
	Handle       string `json:"handle"`
	Token        string `json:"-"` // the access token of the sign-up's session
	RefreshToken string `json:"-"`
	SessionID    string `json:"-"`
}

// SignUp creates a user with a fixed password.
func (s *System) SignUp(handle string) User {
	s.T.Helper()
	var out struct {
		User         User   `json:"user"`
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
		SessionID    string `json:"session_id"`
	}
	s.Do("POST", "/v1/signup", "", map[string]string{"handle": handle, "password": "password-" + handle}, http.StatusCreated, &out)
	out.User.Token, out.User.RefreshToken, out.User.SessionID = out.Token, out.RefreshToken, out.SessionID
	return out.User
}

// LogIn starts another session of u (password as SignUp sets it) and returns u with its tokens.
func (s *System) LogIn(u User) User {
	s.T.Helper()
	var out struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
		SessionID    string `json:"session_id"`
	}
	s.Do("POST", "/v1/login", "", map[string]string{"handle": u.Handle, "password": "password-" + u.Handle}, http.StatusOK, &out)
	u.Token, u.RefreshToken, u.SessionID = out.Token, out.RefreshToken, out.SessionID
	return u
}

// Direct opens the direct conversation of a and b, accepted by both (a asks, b opens it too,
// which accepts), and returns its id.
func (s *System) Direct(a User, b User) string {
	s.T.Helper()
	id := s.Request(a, b)
	if again := s.Request(b, a); again != id {
		s.T.Fatalf("open direct conversation: %s from one side, %s from the other", id, again)
	}
	return id
}

// Request opens the direct conversation of a and b from a's side only: a request b has not
// accepted. It returns its id.
func (s *System) Request(a User, b User) string {
	s.T.Helper()
	var out struct {
		Conversation struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	s.Do("POST", "/v1/conversations/direct", a.Token, map[string]string{"user_id": b.ID}, 0, &out)
	if out.Conversation.ID == "" {
		s.T.Fatalf("open direct conversation: no id")
	}
	return out.Conversation.ID
}

// Do sends a JSON request to the API and decodes the answer into out (if non-nil). want 0 accepts
// any 2xx status.
func (s *System) Do(method, path, token string, body any, want int, out any) int {
	s.T.Helper()
	client := s.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	status, raw := RequestWith(s.T, client, method, s.APIURL+path, token, body)
	if (want == 0 && (status < 200 || status > 299)) || (want != 0 && status != want) {
		s.T.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.T.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return status
}

// Request performs one HTTP request with an optional bearer token and JSON body.
func Request(t testing.TB, method, url, token string, body any) (int, []byte) {
	t.Helper()
	return RequestWith(t, http.DefaultClient, method, url, token, body)
}

// RequestWith is Request with the given client.
func RequestWith(t testing.TB, client *http.Client, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// WSURLFor builds the socket URL for a device, with an optional cursor (nil: live only).
func WSURLFor(base, token, device string, cursor *uint64) string {
	u := base + "?token=" + token + "&device=" + device
	if cursor != nil {
		u += fmt.Sprintf("&cursor=%d", *cursor)
	}
	return strings.TrimSpace(u)
}

// WaitPersisted waits until the persister has stored every event up to seq.
func (s *System) WaitPersisted(seq uint64) {
	s.T.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		marks, err := s.Run.Timeline.Marks(context.Background())
		if err != nil {
			s.T.Fatalf("marks: %v", err)
		}
		if marks.Stored >= seq {
			return
		}
		if time.Now().After(deadline) {
			s.T.Fatalf("persister stored up to %d, not %d, after 30s", marks.Stored, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Discover asks the API at apiURL for the least-loaded live gateway, as a client would: a
// client.Config.Discover.
func Discover(apiURL string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", apiURL+"/v1/discovery", nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("discovery: %s", resp.Status)
		}
		var out struct {
			Gateway struct {
				URL string `json:"url"`
			} `json:"gateway"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return "", err
		}
		return out.Gateway.URL, nil
	}
}

// Metric is the value of the unlabelled metric name on the system's /metrics endpoint (start it
// with MetricsAddr "127.0.0.1:0"); a metric not shown there fails the test.
func (s *System) Metric(name string) float64 {
	s.T.Helper()
	if s.Run.Metrics == nil {
		s.T.Fatalf("metric %s: the system serves no metrics (set MetricsAddr)", name)
	}
	resp, err := http.Get("http://" + s.Run.Metrics.String() + "/metrics")
	if err != nil {
		s.T.Fatalf("metric %s: %v", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.T.Fatalf("metric %s: %v", name, err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.T.Fatalf("metric %s: %q: %v", name, line, err)
			}
			return f
		}
	}
	s.T.Fatalf("metric %s is not on /metrics", name)
	return 0
}
