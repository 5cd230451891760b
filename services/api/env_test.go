package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp refreshes its cached Date header from one process-wide goroutine, forever.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// fasthttp's worker-pool cleaner notices a stopped server only when its sleep
		// (MaxIdleWorkerDuration, 10 s) ends: it exits, but after the test binary checks.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// Bleve (the search tests' index) starts its analysis workers when its package loads.
		goleak.IgnoreTopFunction("github.com/blevesearch/bleve_index_api.AnalysisWorker"),
		// nats-server's wait for a source consumer (see natsxtest.IgnoreServerGoroutines).
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3"),
	)
}

var testSecret = []byte("0123456789abcdef0123456789abcdef-api-tests")

// env is one API server on 127.0.0.1:0 over an embedded nats-server and a Pebble store.
type env struct {
	srv    *Server
	base   string
	client *http.Client
	store  store.Store
	js     jetstream.JetStream
	tokens *auth.Tokens
	reg    *prometheus.Registry
}

// newEnv starts the server; opts adjust its Config first.
func newEnv(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, func(cfg *Config) {
		for _, o := range opts {
			o(cfg)
		}
	}, nil)
}

// newEnvWith is newEnv with adjust applied to the configuration and, if now is not nil, the
// rate limits reading the clock now.
func newEnvWith(t *testing.T, adjust func(*Config), now func() time.Time) *env {
	t.Helper()
	e := &env{js: natsxtest.Start(t).JS, store: pebbletest.Open(t), reg: prometheus.NewRegistry()}
	var err error
	if e.tokens, err = auth.NewTokens(testSecret, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The cheapest bcrypt cost, as apptest uses: at the default cost (10) every sign-up and login
	// took about a second under -race, and no test here depends on the cost.
	// HashWait: logins against the cost-10 testPasswordHash take about a second each under -race;
	// parallel tests queue for the few bcrypt slots rather than get 503.
	// RequestTimeout: on a loaded machine a sign-up or login (JetStream publishes, Pebble writes
	// beside a dozen parallel tests doing the same) once used up the default 10 s and answered
	// 503; no test here is about that bound.
	cfg := Config{Addr: "127.0.0.1:0", PasswordCost: auth.MinPasswordCost, HashWait: time.Minute, RequestTimeout: time.Minute}
	adjust(&cfg)
	e.srv, err = New(cfg, Deps{
		Log:   zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		Store: e.store, Tokens: e.tokens, Timeline: timeline.New(e.store, e.js), JS: e.js, Metrics: e.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		e.srv.now = now
	}
	if err := e.srv.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	e.base = "http://" + e.srv.Addr()
	// ExpectContinueTimeout: bodies go out only after the server's 100 Continue, as careful
	// clients send them, so an oversized one is refused (413) before it is written, not reset.
	// The timeouts are safety nets, not limits: with -race on a 2-core machine at load 26 a
	// parallel test's requests took more than 10 s.
	e.client = &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}, Timeout: time.Minute}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// do sends a request: body is sent as is when it is a string or []byte, as JSON otherwise (nil:
// no body). token, if not empty, goes into "Authorization: Bearer".
func (e *env) do(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	status, _, raw := e.send(t, method, path, token, body)
	return status, raw
}

// send is do that also returns the answer's header.
func (e *env) send(t *testing.T, method, path, token string, body any) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Expect", "100-continue")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// call sends a request, requires status want and decodes the answer into out (if not nil).
func (e *env) call(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	status, raw := e.do(t, method, path, token, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// wantError sends a request and requires an error answer with status and code.
func (e *env) wantError(t *testing.T, method, path, token string, body any, status int, code protocol.Code) {
	t.Helper()
	got, raw := e.do(t, method, path, token, body)
	var eb errorBody
	if err := json.Unmarshal(raw, &eb); err != nil {
		t.Fatalf("%s %s: error body %q: %v", method, path, raw, err)
	}
	if got != status || eb.Error.Code != code || eb.Error.Message == "" {
		t.Fatalf("%s %s: got %d %s, want %d %s", method, path, got, raw, status, code)
	}
}

var testPasswordHash = sync.OnceValue(func() []byte {
	h, err := auth.HashPassword("correct horse", 0)
	if err != nil {
		panic(err)
	}
	return h
})

// user creates a user directly in the store (password "correct horse") and returns a token.
func (e *env) user(t *testing.T, handle string) (store.User, string) {
	t.Helper()
	u := store.User{
		ID: ulid.Make().String(), Handle: handle, DisplayName: strings.ToUpper(handle),
		PasswordHash: testPasswordHash(), CreatedAt: time.Now().UTC(),
	}
	if err := e.store.CreateUser(testContext(t), u); err != nil {
		t.Fatal(err)
	}
	return u, e.session(t, u.ID).AccessToken
}

// session starts a session of userID (an account or not) and returns its tokens.
func (e *env) session(t *testing.T, userID string) auth.Issued {
	t.Helper()
	is, err := e.srv.sessions.Start(testContext(t), userID, "api test")
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// conversation creates a group conversation in the store with the given members.
func (e *env) conversation(t *testing.T, id string, members ...store.Member) {
	t.Helper()
	ctx := testContext(t)
	if err := e.store.PutConversation(ctx, store.Conversation{
		ID: id, Kind: store.Group, Name: "group " + id, CreatedAt: time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		m.ConversationID = id
		if m.Role == "" {
			m.Role = "member"
		}
		if err := e.store.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

// insert stores a text message at seq and returns its id.
func (e *env) insert(t *testing.T, conv string, seq uint64, sender string) string {
	t.Helper()
	id := ulid.Make().String()
	_, inserted, err := e.store.InsertMessage(testContext(t), store.Message{
		ConversationID: conv, Seq: seq, ID: id, Kind: streams.KindMsg, SenderID: sender,
		Text: fmt.Sprintf("m%d", seq), SentAt: time.Now().UTC(),
	})
	if err != nil || !inserted {
		t.Fatalf("insert %s/%d: inserted=%v %v", conv, seq, inserted, err)
	}
	return id
}

// publish puts an event on the CHAT stream (no persister runs in these tests) and returns its
// seq and message id.
func (e *env) publish(t *testing.T, ev streams.ChatEvent) (uint64, string) {
	t.Helper()
	if ev.MessageID == "" {
		ev.MessageID = ulid.Make().String()
	}
	if ev.SentAt == 0 {
		ev.SentAt = time.Now().UnixMilli()
	}
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.Publish(testContext(t), streams.ChatSubject(ev.ConversationID, ev.Kind), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence, ev.MessageID
}
