package remote

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/pkg/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

// connect opens a TCP connection of its own to srv, as another process would.
func connect(t testing.TB, srv *server.Server) *nats.Conn {
	t.Helper()
	nc, err := natsx.Connect(srv.ClientURL(), "remote-store-test", nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func serve(t testing.TB, nc *nats.Conn, st store.Store, cfg ServerConfig) *Server {
	t.Helper()
	var log *zap.Logger
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	}
	s, err := Serve(nc, st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A test that stopped the server itself with a deadline has checked that error.
		if err := s.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Error(err)
		}
	})
	return s
}

func dial(t testing.TB, nc *nats.Conn, cfg ClientConfig) *Client {
	t.Helper()
	c, err := Dial(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fixture is one NATS server, a store served on one connection and a client on another.
type fixture struct {
	bus    *natsxtest.Bus
	srvNC  *nats.Conn
	cliNC  *nats.Conn
	server *Server
	client *Client
	prefix string
}

var prefixes atomic.Int64

// newFixture serves st (a new Pebble store if nil) under a prefix of its own.
func newFixture(t *testing.T, st store.Store, scfg ServerConfig, ccfg ClientConfig) *fixture {
	t.Helper()
	bus := natsxtest.Start(t)
	f := &fixture{bus: bus, srvNC: connect(t, bus.Server), cliNC: connect(t, bus.Server)}
	if st == nil {
		st = pebbletest.Open(t)
	}
	f.prefix = fmt.Sprintf("test.store%d", prefixes.Add(1))
	scfg.Prefix, ccfg.Prefix = f.prefix, f.prefix
	f.server = serve(t, f.srvNC, st, scfg)
	f.client = dial(t, f.cliNC, ccfg)
	return f
}

func TestConformance(t *testing.T) {
	bus := natsxtest.Start(t)
	srvNC, cliNC := connect(t, bus.Server), connect(t, bus.Server)
	for _, v := range []struct {
		name string
		cfg  ServerConfig
	}{
		{"OneReply", ServerConfig{}},
		// Replies of about 1 KiB: every page of more than a few messages comes in parts, and
		// the suite's 100,000-code-point message goes alone.
		{"SmallReplies", ServerConfig{MaxReplyBytes: 1 << 10}},
	} {
		t.Run(v.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				cfg := v.cfg
				cfg.Prefix = fmt.Sprintf("test.conformance%d", prefixes.Add(1))
				serve(t, srvNC, pebbletest.Open(t), cfg)
				return dial(t, cliNC, ClientConfig{Prefix: cfg.Prefix})
			})
		})
	}
}

func TestErrorsRoundTrip(t *testing.T) {
	f := newFixture(t, nil, ServerConfig{}, ClientConfig{})
	c, ctx := f.client, t.Context()

	_, err := c.UserByID(ctx, "u-nobody")
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("UserByID(unknown): %v, want ErrNotFound", err)
	}
	if !strings.HasPrefix(fmt.Sprint(err), "remote store: UserByID: ") {
		t.Errorf("error %q lacks its context", err)
	}
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Code != CodeNotFound {
		t.Errorf("UserByID(unknown): %#v, want an *Error with code %s", err, CodeNotFound)
	}

	alice := store.User{ID: "u-alice", Handle: "alice", CreatedAt: time.UnixMilli(1)}
	if err := c.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	err = c.CreateUser(ctx, store.User{ID: "u-carol", Handle: "alice"})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser(taken handle): %v, want ErrConflict", err)
	}
	if err := c.UpdateProfile(ctx, "u-nobody", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateProfile(unknown): %v, want ErrNotFound", err)
	}
	_, err = c.Messages(ctx, "c1", store.Page{Before: 5, After: 1})
	if !errors.Is(err, store.ErrBadPage) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Messages(before and after): %v, want ErrBadPage", err)
	}

	// Any other error of the served store comes back as text, with its context, and matches
	// none of the sentinels.
	closed, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	prefix := f.prefix + "closed"
	serve(t, f.srvNC, closed, ServerConfig{Prefix: prefix})
	cc := dial(t, f.cliNC, ClientConfig{Prefix: prefix})
	_, err = cc.UserByID(ctx, "u-alice")
	if err == nil || errors.Is(err, store.ErrNotFound) || !errors.As(err, &rerr) || rerr.Code != CodeInternal ||
		!strings.HasPrefix(err.Error(), "remote store: UserByID: ") || !strings.Contains(err.Error(), pebble.ErrClosed.Error()) {
		t.Errorf("UserByID on a closed store: %v, want an internal error %q with context", err, pebble.ErrClosed)
	}
}

// gated is a real store whose UserByID and CreateUser wait at a gate until the test opens it
// (or the request's context ends): a way to hold requests in flight on the server.
type gated struct {
	store.Store
	entered chan struct{} // one value per call, when it reaches the gate
	gate    chan struct{} // closed to let every call through
	calls   atomic.Int32
}

func newGated(st store.Store) *gated {
	return &gated{Store: st, entered: make(chan struct{}, 100), gate: make(chan struct{})}
}

func (g *gated) wait(ctx context.Context) error {
	g.calls.Add(1)
	g.entered <- struct{}{}
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gated) UserByID(ctx context.Context, id string) (store.User, error) {
	if err := g.wait(ctx); err != nil {
		return store.User{}, err
	}
	return g.Store.UserByID(ctx, id)
}

func (g *gated) CreateUser(ctx context.Context, u store.User) error {
	if err := g.wait(ctx); err != nil {
		return err
	}
	return g.Store.CreateUser(ctx, u)
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestRetryNoResponders(t *testing.T) {
	bus := natsxtest.Start(t)
	srvNC, cliNC := connect(t, bus.Server), connect(t, bus.Server)
	st := pebbletest.Open(t)
	c := dial(t, cliNC, ClientConfig{Prefix: "test.late"})

	// No server at all: the client retries until its deadline, then says why. A deadline that
	// ends an attempt in flight leaves only the deadline to report (the request might have run),
	// and on a loaded machine a 100 ms deadline did that now and then; so the deadline is a
	// second, and the best of three tries counts. A client that never says why fails all three.
	var err error
	for try := 0; try < 3 && !errors.Is(err, nats.ErrNoResponders); try++ {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err = c.UserByID(ctx, "u1")
		cancel()
	}
	if !errors.Is(err, nats.ErrNoResponders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a server: %v, want no responders and the deadline", err)
	}

	// The server comes up 300 ms after a call began: the call succeeds.
	up := make(chan *Server, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		s, err := Serve(srvNC, st, ServerConfig{Prefix: "test.late"}, zap.NewNop())
		if err != nil {
			t.Error(err)
		}
		up <- s
	}()
	start := time.Now()
	u := store.User{ID: "u1", Handle: "alice", CreatedAt: time.UnixMilli(7).UTC()}
	err = c.CreateUser(t.Context(), u)
	took := time.Since(start)
	s := <-up
	if s != nil {
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
	}
	if err != nil {
		t.Fatalf("CreateUser while the server starts: %v", err)
	}
	if took < 250*time.Millisecond || took > 5*time.Second {
		t.Errorf("CreateUser took %v, want a little over 300ms", took)
	}
	if got, err := st.UserByID(t.Context(), "u1"); err != nil || !reflect.DeepEqual(got, u) {
		t.Errorf("stored user %+v, %v; want %+v", got, err, u)
	}
}

func TestNoRetryOnTimeout(t *testing.T) {
	g := newGated(pebbletest.Open(t))
	f := newFixture(t, g, ServerConfig{}, ClientConfig{Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := f.client.CreateUser(context.Background(), store.User{ID: "u1", Handle: "alice"})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CreateUser held on the server: %v, want the deadline", err)
	}
	// It waited for its deadline (measured from just before start: allow the difference), and
	// not for a retry.
	if took < 150*time.Millisecond || took > 5*time.Second {
		t.Errorf("CreateUser gave up after %v, want the 200ms timeout", took)
	}
	// Give a retry, were there one, time to arrive.
	time.Sleep(300 * time.Millisecond)
	if n := g.calls.Load(); n != 1 {
		t.Errorf("the server ran the request %d times, want once", n)
	}
	close(g.gate)
}

func TestBusy(t *testing.T) {
	g := newGated(pebbletest.Open(t))
	f := newFixture(t, g, ServerConfig{Workers: 1, Backlog: 1}, ClientConfig{})
	ctx := t.Context()
	if err := g.Store.CreateUser(ctx, store.User{ID: "u1", Handle: "alice"}); err != nil {
		t.Fatal(err)
	}

	// One request runs (held at the gate), one waits in the backlog.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	call := func() {
		wg.Go(func() {
			_, err := f.client.UserByID(ctx, "u1")
			errs <- err
		})
	}
	call()
	<-g.entered
	call()
	eventually(t, "a request in the backlog", func() bool { return len(f.server.work) == 1 })

	// The server turns a third away; it says so on the wire, and the client retries until its
	// deadline. Nothing turned away ran.
	msg, err := f.cliNC.Request(f.prefix+".UserByID", encodeRequest(mUserByID, &request{a: "u1", timeout: time.Second}), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := decodeResponse(mUserByID, msg.Data); err != nil || r.code != CodeBusy {
		t.Errorf("reply to a request over capacity: %+v, %v; want code %s", r, err, CodeBusy)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = f.client.UserByID(short, "u1")
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call over capacity: %v, want ErrBusy and the deadline", err)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("%d requests reached the store, want 1", n)
	}

	// A call retrying on busy gets through once capacity frees up.
	call()
	time.Sleep(50 * time.Millisecond)
	close(g.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestStopDrains(t *testing.T) {
	g := newGated(pebbletest.Open(t))
	// The gated requests wait for the whole test: a minute, not the default 10 s, which a
	// machine at load 20 outran.
	f := newFixture(t, g, ServerConfig{Workers: 2, Backlog: 8}, ClientConfig{Timeout: time.Minute})
	ctx := t.Context()
	if err := g.Store.CreateUser(ctx, store.User{ID: "u1", Handle: "alice"}); err != nil {
		t.Fatal(err)
	}
	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			u, err := f.client.UserByID(ctx, "u1")
			if err == nil && u.ID != "u1" {
				err = fmt.Errorf("got user %+v", u)
			}
			errs <- err
		})
	}
	eventually(t, "two requests running, three queued", func() bool {
		return g.calls.Load() == 2 && len(f.server.work) == n-2
	})

	stopped := make(chan error, 1)
	go func() { stopped <- f.server.Stop(ctx) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned with requests in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The subscription is gone: a new request finds no responder.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	// (The client retries "no responders" until its deadline, so it may end on either.)
	if _, err := f.client.UserByID(short, "u1"); !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call while stopping: %v, want no responders", err)
	}
	if got := g.calls.Load(); got != 2 {
		t.Errorf("the stopping server ran %d requests, want only the 2 it had started", got)
	}

	close(g.gate)
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("request in flight at Stop: %v", err)
		}
	}
	if err := f.server.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// lateTimer is a context whose deadline has passed while its timer has not fired yet, as
// happens on a busy machine: Deadline is in the past, Err still nil.
type lateTimer struct{ context.Context }

func (lateTimer) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A call whose deadline has passed fails with DeadlineExceeded even before its context says so;
// it once returned an empty answer as a success (a zero user, an empty page), which under load
// made TestStopDrains fail now and then.
func TestPassedDeadlineIsNotAnEmptySuccess(t *testing.T) {
	f := newFixture(t, nil, ServerConfig{}, ClientConfig{})
	ctx := lateTimer{context.Background()}
	if u, err := f.client.UserByID(ctx, "u1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("UserByID past its deadline: %+v, %v; want DeadlineExceeded", u, err)
	}
	if page, err := f.client.Messages(ctx, "c1", store.Page{Limit: 10}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Messages past its deadline: %d messages, %v; want DeadlineExceeded", len(page), err)
	}
}

func TestStopGivesUp(t *testing.T) {
	g := newGated(pebbletest.Open(t))
	f := newFixture(t, g, ServerConfig{}, ClientConfig{})
	errc := make(chan error, 1)
	go func() {
		_, err := f.client.UserByID(t.Context(), "u1")
		errc <- err
	}()
	<-g.entered
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := f.server.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop with a request held: %v, want the deadline", err)
	}
	// The held request's context was cancelled and it was answered.
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("request cut off by Stop: %v, want context canceled", err)
	}
}

func TestExpiredRequestsDropped(t *testing.T) {
	g := newGated(pebbletest.Open(t))
	f := newFixture(t, g, ServerConfig{Workers: 1}, ClientConfig{})
	ctx := t.Context()
	held := make(chan error, 1)
	go func() {
		_, err := f.client.UserByID(ctx, "u1")
		held <- err
	}()
	<-g.entered
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := f.client.UserByID(short, "u2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued call: %v, want the deadline", err)
	}
	// The server dates the request from its arrival, which trails the caller's clock by the time
	// the request took to leave (tens of ms on a busy machine): let the server's deadline pass too.
	time.Sleep(500 * time.Millisecond)
	close(g.gate)
	if err := <-held; !errors.Is(err, store.ErrNotFound) {
		t.Errorf("held call: %v, want ErrNotFound", err)
	}
	// The queued request, whose caller gave up, never reached the store.
	if _, err := f.client.UserByID(ctx, "u3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("%d requests reached the store, want 2 (the expired one dropped)", n)
	}
}

// counting counts the Messages calls of a real store.
type counting struct {
	store.Store
	pages atomic.Int32
}

func (c *counting) Messages(ctx context.Context, conv string, p store.Page) ([]store.Message, error) {
	c.pages.Add(1)
	return c.Store.Messages(ctx, conv, p)
}

// TestPagesLargerThanMaxPayload reads pages of 200 messages of 100,000 emoji (80 MB) through
// the embedded server's 8 MiB max payload.
func TestPagesLargerThanMaxPayload(t *testing.T) {
	st := &counting{Store: pebbletest.Open(t)}
	f := newFixture(t, st, ServerConfig{}, ClientConfig{Timeout: 5 * time.Minute})
	ctx := t.Context()
	const n = 200
	text := strings.Repeat("😀", 100_000)
	if limit := f.cliNC.MaxPayload(); int64(n*len(text)) < 5*limit {
		t.Fatalf("max payload %d: the test needs pages several times larger", limit)
	}
	all := make([]store.Message, n) // oldest first
	for i := range all {
		all[i] = store.Message{ConversationID: "c1", Seq: uint64(i + 1), ID: fmt.Sprint("m", i), Kind: "msg",
			SenderID: "u1", Text: text, SentAt: time.UnixMilli(int64(i)).UTC()}
	}
	// A few go through the client (requests of 400 KB), the rest straight into the store.
	for i, m := range all {
		var inserted bool
		var err error
		if i%20 == 0 {
			_, inserted, err = f.client.InsertMessage(ctx, m)
		} else {
			_, inserted, err = st.Store.InsertMessage(ctx, m)
		}
		if err != nil || !inserted {
			t.Fatalf("insert %d: inserted=%v, %v", i, inserted, err)
		}
	}
	// want is the messages with lo <= seq <= hi, newest first.
	want := func(lo, hi uint64) []store.Message {
		out := slices.Clone(all[lo-1 : hi])
		slices.Reverse(out)
		return out
	}
	for _, tc := range []struct {
		p    store.Page
		want []store.Message
	}{
		{store.Page{Limit: n}, want(1, n)},
		{store.Page{Oldest: true, Limit: n}, want(1, n)},
		{store.Page{Before: 190, Limit: 150}, want(40, 189)},
		{store.Page{After: 150, Limit: n}, want(151, n)},
		{store.Page{Before: 30, Limit: n}, want(1, 29)},
	} {
		before := st.pages.Load()
		got, err := f.client.Messages(ctx, "c1", tc.p)
		if err != nil {
			t.Fatalf("Messages(%+v): %v", tc.p, err)
		}
		parts := st.pages.Load() - before
		if len(got) != len(tc.want) {
			t.Errorf("Messages(%+v): %d messages, want %d", tc.p, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if got[i].Seq != tc.want[i].Seq || got[i].Text != text || got[i].ID != tc.want[i].ID {
				t.Errorf("Messages(%+v)[%d]: seq %d, id %s, %d bytes of text; want seq %d", tc.p, i, got[i].Seq, got[i].ID, len(got[i].Text), tc.want[i].Seq)
				break
			}
		}
		t.Logf("Messages(%+v): %d messages, %d MB, in %d parts", tc.p, len(got), len(got)*len(text)>>20, parts)
		if size := int64(len(got) * len(text)); size > f.cliNC.MaxPayload() && parts < 2 {
			t.Errorf("Messages(%+v): %d bytes in one reply", tc.p, size)
		}
	}
	around, err := store.Around(ctx, f.client, "c1", 100, store.MaxPageLimit)
	if err != nil || len(around) != n || around[0].Seq != n || around[n-1].Seq != 1 {
		t.Errorf("Around(100, %d): %d messages, %v", store.MaxPageLimit, len(around), err)
	}
}

// startSmall starts a plain nats-server with a small max payload.
func startSmall(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv
}

func TestSmallMaxPayload(t *testing.T) {
	srv := startSmall(t, 64<<10)
	srvNC, cliNC := connect(t, srv), connect(t, srv)
	serve(t, srvNC, pebbletest.Open(t), ServerConfig{})
	c := dial(t, cliNC, ClientConfig{})
	ctx := t.Context()

	// 100 messages of ~2 KB: a page of all of them takes four replies or so.
	var all []store.Message
	for i := range 100 {
		m := store.Message{ConversationID: "c1", Seq: uint64(10 + 3*i), ID: fmt.Sprint("m", i), Kind: "msg", Text: strings.Repeat("é", 1000)}
		if _, _, err := c.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		all = append(all, m)
	}
	for _, p := range []store.Page{{Limit: 100}, {Oldest: true, Limit: 100}, {Before: 200, Limit: 77}, {After: 50, Limit: 90}} {
		got, err := c.Messages(ctx, "c1", p)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for _, m := range all {
			if (p.Before == 0 || m.Seq < p.Before) && m.Seq > p.After {
				want = append(want, m.Seq)
			}
		}
		if p.Forward() {
			want = want[:min(len(want), p.Limit)]
		} else {
			want = want[max(0, len(want)-p.Limit):]
		}
		slices.Reverse(want)
		if fmt.Sprint(seqsOf(got)) != fmt.Sprint(want) {
			t.Errorf("Messages(%+v): seqs %v, want %v", p, seqsOf(got), want)
		}
	}

	// A request larger than the max payload fails at once, without being sent or retried.
	big := store.Message{ConversationID: "c1", Seq: 1, ID: "big", Text: strings.Repeat("x", 100<<10)}
	if _, _, err := c.InsertMessage(ctx, big); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("InsertMessage of 100 KiB: %v, want ErrMaxPayload", err)
	}
	// A reply larger than the max payload that cannot come in parts is answered too_large.
	long := strings.Repeat("u", 200)
	for i := range 400 {
		if err := c.PutMember(ctx, store.Member{ConversationID: "c1", UserID: fmt.Sprint(long, i), Role: "member"}); err != nil {
			t.Fatal(err)
		}
	}
	var rerr *Error
	if _, err := c.Members(ctx, "c1"); !errors.As(err, &rerr) || rerr.Code != CodeTooLarge {
		t.Errorf("Members of 80 KB: %v, want code %s", err, CodeTooLarge)
	}
	if ms, err := c.Members(ctx, "c2"); err != nil || len(ms) != 0 {
		t.Errorf("the server after a reply too large: %v, %v", ms, err)
	}
}

func seqsOf(ms []store.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, nil, ServerConfig{}, ClientConfig{})
	for _, tc := range []struct {
		subject string
		data    []byte
	}{
		{f.prefix + ".UserByID", nil},
		{f.prefix + ".UserByID", []byte("{\"id\":\"u1\"}")},
		{f.prefix + ".UserByID", []byte{wireVersion, 0, 5, 'a'}},                        // string past the end
		{f.prefix + ".UserByID", append(encodeRequest(mUserByID, &request{a: "u"}), 0)}, // trailing byte
		{f.prefix + ".Messages", []byte{wireVersion, 0, 1, 'c', 0, 0, 2, 0}},            // flag 2
		{f.prefix + ".Nope", encodeRequest(mUserByID, &request{a: "u"})},
		{f.prefix + ".UserByID.more", encodeRequest(mUserByID, &request{a: "u"})},
	} {
		msg, err := f.cliNC.Request(tc.subject, tc.data, 5*time.Second)
		if err != nil {
			t.Errorf("%s %q: %v", tc.subject, tc.data, err)
			continue
		}
		r, err := decodeResponse(mUserByID, msg.Data)
		if err != nil || r.code != CodeBadRequest {
			t.Errorf("%s %q: reply %+v, %v; want code %s", tc.subject, tc.data, r, err, CodeBadRequest)
		}
	}
	// A request without a reply subject is dropped.
	if err := f.cliNC.Publish(f.prefix+".CreateUser", encodeRequest(mCreateUser, &request{user: store.User{ID: "u1", Handle: "h"}})); err != nil {
		t.Fatal(err)
	}
	// The server is unharmed.
	if err := f.client.CreateUser(t.Context(), store.User{ID: "u2", Handle: "h2"}); err != nil {
		t.Fatal(err)
	}
}

func TestClientClose(t *testing.T) {
	f := newFixture(t, nil, ServerConfig{}, ClientConfig{})
	if err := f.client.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.UserByID(t.Context(), "u1"); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: %v, want ErrClosed", err)
	}
	if !f.cliNC.IsConnected() {
		t.Error("Close closed the NATS connection")
	}
	c := dial(t, f.cliNC, ClientConfig{Prefix: f.prefix})
	if _, err := c.UserByID(t.Context(), "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another client on the connection: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, p := range []string{"a.", ".a", "a..b", "a.*", "a.>", "a b"} {
		if err := (ServerConfig{Prefix: p}).Validate(); err == nil {
			t.Errorf("server prefix %q accepted", p)
		}
		if err := (ClientConfig{Prefix: p}).Validate(); err == nil {
			t.Errorf("client prefix %q accepted", p)
		}
	}
	for _, c := range []ServerConfig{{Workers: -1}, {Backlog: -1}, {MaxReplyBytes: -1}, {DefaultTimeout: -1}, {QueueGroup: "a b"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (ClientConfig{Timeout: -1}).Validate(); err == nil {
		t.Error("negative timeout accepted")
	}
	if err := (ServerConfig{}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (ClientConfig{Prefix: "natter.store.v2"}).Validate(); err != nil {
		t.Error(err)
	}
}
