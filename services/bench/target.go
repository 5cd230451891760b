package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/streams"
)

// target is the natter under test: started in-process, or an external one named by URL.
type target struct {
	apiURL, wsURL string
	metricsURL    string // natter's /metrics, for its stage timings; "" unknown
	inProcess     bool
	cpu           cpuMeter
	rssPID        int // 0: this process; -1: unknown
	log           *zap.Logger
	http          *http.Client

	// in-process only
	dir string
	app *fx.App
	run *app.Running
	nc  *nats.Conn // an observer connection, to see when the consumers have caught up
	js  jetstream.JetStream
}

// frameRateLifted is the per-connection frame rate limit of an in-process natter: the bench
// measures capacity, and a flat-out sender is far above the 100 frames/s a real client gets.
const frameRateLifted = 1e9

func startTarget(ctx context.Context, cfg Config, log *zap.Logger) (*target, error) {
	t := &target{log: log, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if cfg.APIURL != "" {
		t.apiURL = strings.TrimRight(cfg.APIURL, "/")
		t.wsURL = cfg.WSURL
		t.metricsURL = cfg.MetricsURL
		if cfg.NATSURL != "" {
			nc, err := natsx.Connect(cfg.NATSURL, "natter-bench-observer", nil, log)
			if err != nil {
				return nil, fmt.Errorf("observe natter's NATS: %w", err)
			}
			t.nc = nc
			if t.js, err = jetstream.New(nc); err != nil {
				nc.Close()
				return nil, err
			}
		}
		t.cpu = cpuMeter{pid: cfg.PID}
		t.rssPID = cfg.PID
		if cfg.PID == 0 {
			t.rssPID = -1
		}
		if t.wsURL == "" {
			var out struct {
				Gateway struct {
					URL string `json:"url"`
				} `json:"gateway"`
			}
			if status, raw, err := t.do(ctx, "GET", "/v1/discovery", "", nil, &out); err != nil || status != 200 || out.Gateway.URL == "" {
				return nil, fmt.Errorf("discover the gateway at %s (or give --ws-url): status %d %s: %v", t.apiURL, status, raw, err)
			}
			t.wsURL = out.Gateway.URL
		}
		return t, nil
	}

	dir, err := os.MkdirTemp("", "natter-bench-")
	if err != nil {
		return nil, err
	}
	t.dir, t.inProcess = dir, true
	ac := app.DefaultConfig()
	ac.DataDir = dir
	ac.NATS.Port = -1
	ac.API.Addr = "127.0.0.1:0"
	ac.Gateway.Addr = "127.0.0.1:0"
	ac.MetricsAddr = "127.0.0.1:0" // natter's own stage timings go into the report
	ac.SpareProc = false           // the load generator shares the process: its CPU is not natter's
	ac.JWTSecret = make([]byte, 32)
	_, _ = rand.Read(ac.JWTSecret)
	ac.API.PasswordCost = auth.MinPasswordCost // sign-up is not what is measured
	ac.API.Limits = api.NoLimits()             // nor are the rate limits: hundreds of users from one address
	// Nor are the gateway's per-address limits: many sockets from 127.0.0.1.
	ac.Gateway.LiftAddrLimits()
	ac.API.HashWait = time.Minute
	ac.AccessTTL = 24 * time.Hour // a long run reconnects with its sign-up tokens; refresh is not what is measured
	ac.Gateway.FramesPerSecond = frameRateLifted
	ac.Gateway.Burst = 1 << 30
	fxApp, run, err := app.New(ac, log)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("build natter: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := fxApp.Start(startCtx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start natter: %w", err)
	}
	t.app, t.run = fxApp, run
	t.apiURL = "http://" + run.API.Addr()
	t.wsURL = run.Gateway.URL()
	if run.Metrics != nil {
		t.metricsURL = "http://" + run.Metrics.String() + "/metrics"
	}
	if t.nc, err = natsx.Connect("", "natter-bench-observer", run.NATSServer, log); err == nil {
		t.js, err = jetstream.New(t.nc)
	}
	if err != nil {
		_ = t.stop()
		return nil, fmt.Errorf("observe natter's NATS: %w", err)
	}
	return t, nil
}

func (t *target) stop() error {
	t.http.CloseIdleConnections()
	if t.nc != nil {
		t.nc.Close()
	}
	if !t.inProcess {
		return nil
	}
	var err error
	if t.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = t.app.Stop(ctx)
		cancel()
	}
	return errors.Join(err, os.RemoveAll(t.dir))
}

// consumerBacklog is how many CHAT events natter's persister and fanout have not yet handled
// (pending plus unacknowledged). For an external natter it cannot tell, and says 0.
func (t *target) consumerBacklog(ctx context.Context) (uint64, error) {
	return t.backlogOf(ctx, streams.PersisterConsumer, streams.FanoutConsumer)
}

// searchBacklog is the CHAT events search has not indexed and acknowledged yet.
func (t *target) searchBacklog(ctx context.Context) (uint64, error) {
	if t.js == nil {
		return 0, errors.New("natter's NATS is unknown")
	}
	return t.backlogOf(ctx, streams.SearchConsumer)
}

// backlogOf sums the pending and unacknowledged events of CHAT's consumers names.
func (t *target) backlogOf(ctx context.Context, names ...string) (uint64, error) {
	if t.js == nil {
		return 0, nil
	}
	var n uint64
	for _, name := range names {
		c, err := t.js.Consumer(ctx, streams.ChatStream, name)
		if err != nil {
			return 0, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		n += info.NumPending + uint64(info.NumAckPending)
	}
	return n, nil
}

// metrics scrapes natter's stage histograms; nil when natter's metrics are unknown.
func (t *target) metrics(ctx context.Context) map[string]float64 {
	if t.metricsURL == "" {
		return nil
	}
	m, err := scrape(ctx, t.http, t.metricsURL)
	if err != nil {
		t.log.Warn("scrape natter metrics", zap.Error(err))
		return nil
	}
	return m
}

// user is a signed-up bench account.
type user struct {
	ID    string
	Token string
}

func (t *target) signup(ctx context.Context, handle string) (user, error) {
	var out struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Token string `json:"token"`
	}
	body := map[string]string{"handle": handle, "password": "bench-password-" + handle}
	status, raw, err := t.do(ctx, "POST", "/v1/signup", "", body, &out)
	for try := 0; err == nil && status == http.StatusServiceUnavailable && try < 5; try++ { // busy hashing: retry
		sleep(ctx, time.Duration(try+1)*200*time.Millisecond)
		status, raw, err = t.do(ctx, "POST", "/v1/signup", "", body, &out)
	}
	if err != nil {
		return user{}, fmt.Errorf("sign up %s: %w", handle, err)
	}
	if status != http.StatusCreated || out.User.ID == "" || out.Token == "" {
		return user{}, fmt.Errorf("sign up %s: status %d: %s", handle, status, raw)
	}
	return user{ID: out.User.ID, Token: out.Token}, nil
}

func (t *target) direct(ctx context.Context, a, b user) (string, error) {
	var out conversationAnswer
	status, raw, err := t.do(ctx, "POST", "/v1/conversations/direct", a.Token, map[string]string{"user_id": b.ID}, &out)
	if err != nil {
		return "", fmt.Errorf("open direct conversation: %w", err)
	}
	if status/100 != 2 || out.Conversation.ID == "" {
		return "", fmt.Errorf("open direct conversation: status %d: %s", status, raw)
	}
	// b opens it too, which accepts a's request: both sides' messages are delivered.
	if status, raw, err = t.do(ctx, "POST", "/v1/conversations/direct", b.Token, map[string]string{"user_id": a.ID}, nil); err != nil || status/100 != 2 {
		return "", fmt.Errorf("accept direct conversation: status %d: %s: %v", status, raw, err)
	}
	return out.Conversation.ID, nil
}

type conversationAnswer struct {
	Conversation struct {
		ID      string   `json:"id"`
		Members []string `json:"members"`
	} `json:"conversation"`
}

// errNoGroupAPI means the natter under test has no POST /v1/groups.
var errNoGroupAPI = errors.New("no group API")

// group creates a group owned by owner with the other members; it returns the conversation id
// and the member count the API reports (0 if it does not say). A natter that invites instead of
// adding (the group answers with the owner alone) has each of the others accept.
func (t *target) group(ctx context.Context, owner user, others []user, name string) (string, int, error) {
	ids := make([]string, len(others))
	for i, u := range others {
		ids[i] = u.ID
	}
	var out conversationAnswer
	status, raw, err := t.do(ctx, "POST", "/v1/groups", owner.Token, map[string]any{"name": name, "member_ids": ids}, &out)
	if err != nil {
		return "", 0, fmt.Errorf("create group: %w", err)
	}
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		return "", 0, errNoGroupAPI
	}
	if status/100 != 2 || out.Conversation.ID == "" {
		return "", 0, fmt.Errorf("create group: status %d: %s", status, raw)
	}
	n := len(out.Conversation.Members)
	if n == 1 && len(others) > 0 {
		for _, u := range others {
			status, raw, err := t.do(ctx, "POST", "/v1/conversations/"+out.Conversation.ID+"/accept", u.Token, nil, nil)
			if err != nil || status/100 != 2 {
				return "", 0, fmt.Errorf("accept group invitation: status %d: %s: %v", status, raw, err)
			}
		}
		n += len(others)
	}
	return out.Conversation.ID, n, nil
}

// do sends one JSON request and decodes a JSON answer into out when the status is 2xx.
func (t *target) do(ctx context.Context, method, path, token string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.apiURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode %s: %w", raw, err)
		}
	}
	return resp.StatusCode, raw, nil
}
