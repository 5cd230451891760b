package invariant

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/ratelimit"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/app"
)

// cluster is natter split into independently stoppable components around one NATS server and
// one store, all in this process.
type cluster struct {
	t      *testing.T
	dir    string
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	st     store.Store
	secret []byte
	n      int
}

type component struct {
	app *fx.App
	run *app.Running
}

func newCluster(t *testing.T) *cluster {
	dir := t.TempDir()
	log := zap.NewNop()
	srv, err := natsx.StartServer(natsx.ServerConfig{Dir: filepath.Join(dir, "nats"), Port: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pebble.Open(filepath.Join(dir, "store"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsx.Connect(srv.ClientURL(), "invariant", nil, log)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 64)
	_, _ = rand.Read(secret)
	c := &cluster{t: t, dir: dir, srv: srv, nc: nc, js: js, st: st, secret: secret}
	t.Cleanup(func() {
		nc.Close()
		_ = st.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return c
}

// start runs the given targets as one more process-like graph; stop it with stop.
func (c *cluster) start(targets ...string) *component {
	return c.startWith(func(*app.Config) {}, targets...)
}

func (c *cluster) startWith(adjust func(*app.Config), targets ...string) *component {
	c.t.Helper()
	c.n++
	cfg := app.DefaultConfig()
	cfg.Targets = targets
	cfg.DataDir = filepath.Join(c.dir, fmt.Sprintf("component-%d", c.n))
	cfg.NATSURL = c.srv.ClientURL()
	cfg.Store = c.st
	cfg.JWTSecret = c.secret
	cfg.MetricsAddr = ""
	cfg.SpareProc = false // components share the test process
	cfg.API.Addr = "127.0.0.1:0"
	cfg.API.PasswordCost = auth.MinPasswordCost
	cfg.API.Limits = api.NoLimits() // hundreds of sign-ups and writes from 127.0.0.1
	cfg.API.HashWait = time.Minute  // queue for bcrypt rather than answer 503 on a busy machine
	// Nor are the gateway's per-address limits: many sockets from 127.0.0.1.
	cfg.Gateway.UpgradesPerAddr, cfg.Gateway.SocketsPerAddr = ratelimit.Off, 0
	cfg.Gateway.Addr = "127.0.0.1:0"
	cfg.Gateway.FramesPerSecond, cfg.Gateway.Burst = 1e6, 1e6
	adjust(&cfg)
	a, run, err := app.New(cfg, zaptest.NewLogger(c.t, zaptest.Level(zap.ErrorLevel)).With(zap.Int("component", c.n)))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		c.t.Fatal(err)
	}
	comp := &component{app: a, run: run}
	c.t.Cleanup(comp.stop)
	return comp
}

func (comp *component) stop() {
	if comp.app == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = comp.app.Stop(ctx)
	comp.app = nil
}
