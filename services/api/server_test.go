package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/pkg/timeline"
)

func TestRoutingErrorsHealthAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.user(t, "alice")

	status, raw := e.do(t, "GET", "/healthz", "", nil)
	if status != http.StatusOK || strings.TrimSpace(string(raw)) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", status, raw)
	}
	e.wantError(t, "GET", "/v1/nope", "", nil, http.StatusNotFound, CodeNotFound)
	e.wantError(t, "GET", "/v1/signup", "", nil, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	e.wantError(t, "PUT", "/v1/me", token, nil, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	e.call(t, "GET", "/v1/me", token, nil, http.StatusOK, nil)
	e.call(t, "GET", "/v1/users/"+strings.Repeat("X", 26), token, nil, http.StatusNotFound, nil)

	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "natter_api_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var route, method, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "method":
					method = l.GetValue()
				case "status":
					code = l.GetValue()
				}
			}
			count[method+" "+route+" "+code] += m.GetCounter().GetValue()
		}
	}
	for _, key := range []string{
		"GET /healthz 200", "GET unmatched 404", "GET unmatched 405", "GET /v1/me 200", "GET /v1/users/:id 404",
	} {
		if count[key] != 1 {
			t.Errorf("requests_total{%s} = %v; all: %v", key, count[key], count)
		}
	}
}

func TestConfigAndLifecycle(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{}, {Addr: "no-port"}, {Addr: ":0", BodyLimit: -1}, {Addr: ":0", RequestTimeout: -time.Second},
		{Addr: ":0", HashConcurrency: -1}, {Addr: ":0", HashWait: -time.Second},
		{Addr: ":0", Limits: Limits{SignupAddr: Rate{N: 5}}}, {Addr: ":0", Limits: Limits{FailureWindow: -time.Minute}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", cfg)
		}
	}
	if err := (Config{Addr: "127.0.0.1:0"}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Addr: ":0"}, Deps{}); err == nil {
		t.Fatal("New without deps succeeded")
	}

	e := newEnv(t)
	deps := Deps{Store: e.store, Tokens: e.tokens, Timeline: timeline.New(e.store, e.js), JS: e.js, Metrics: e.reg}

	// A taken port fails Start, not later.
	busy, err := New(Config{Addr: e.srv.Addr()}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Start(testContext(t)); err == nil {
		t.Fatal("Start on a taken port succeeded")
	}
	if err := busy.Stop(testContext(t)); err != nil {
		t.Fatalf("Stop after failed Start: %v", err)
	}

	// Start then Stop at once, repeatedly: Stop always waits for the serving goroutine.
	for range 5 {
		s, err := New(Config{Addr: "127.0.0.1:0"}, deps) // same registry: metrics are shared
		if err != nil {
			t.Fatal(err)
		}
		if s.Addr() != "" {
			t.Fatal("Addr before Start")
		}
		if err := s.Start(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(testContext(t)); err == nil {
			t.Fatal("second Start succeeded")
		}
		if err := s.Stop(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(testContext(t)); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			c.Close()
			t.Fatal("still accepting after Stop")
		}
	}
}

func TestModule(t *testing.T) {
	t.Parallel()
	js := natsxtest.Start(t).JS
	st := pebbletest.Open(t)
	tokens, err := auth.NewTokens(testSecret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var srv *Server
	app := fx.New(
		fx.NopLogger,
		fx.Supply(Config{Addr: "127.0.0.1:0"}, zap.NewNop(), tokens, timeline.New(st, js)),
		fx.Provide(
			func() store.Store { return st },
			func() jetstream.JetStream { return js },
			func() prometheus.Registerer { return prometheus.NewRegistry() },
		),
		Module,
		fx.Populate(&srv),
	)
	if err := app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
