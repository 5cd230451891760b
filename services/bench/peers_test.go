package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/natter-chat/natter/pkg/procstat"
)

// Frames as Centrifugo v6 writes them (JSON protocol), several replies and pushes in one frame.
const (
	cfConnectReply = `{"id":1,"connect":{"client":"60aaf836-2229-49ba-a5c9-c75db174b75c","version":"6.9.1 OSS","expires":true,"ttl":3600,"ping":25,"pong":true}}`
	cfSubReply     = `{"id":2,"subscribe":{"recoverable":true,"epoch":"hfKZfRdu","positioned":true}}`
)

func cfPushOf(data string, offset int) string {
	return `{"push":{"channel":"chat:a","pub":{"data":` + data + `,"info":{"user":"u1","client":"60aaf836"},"offset":` +
		jsonNum(offset) + `}}}`
}

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCentrifugoFramesSplitIntoLinesAndClassify(t *testing.T) {
	id := msgID{phase: 3, conn: 17, n: 42, sent: 123456789}
	pub := newCFPublish("chat:a", "hello \"world\"")
	cmd := pub.append(nil, 7, id)
	// The data Centrifugo pushes is the data the publisher sent, as sent.
	var sent struct {
		ID      uint32 `json:"id"`
		Publish struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		} `json:"publish"`
	}
	if err := json.Unmarshal(cmd, &sent); err != nil {
		t.Fatalf("publish command %s is not JSON: %v", cmd, err)
	}
	if sent.ID != 7 || sent.Publish.Channel != "chat:a" {
		t.Fatalf("publish command %s: id %d channel %q", cmd, sent.ID, sent.Publish.Channel)
	}
	frame := cfPushOf(string(sent.Publish.Data), 5) + "\n" + `{"id":7,"publish":{}}` + "\n\n" +
		`{}` + "\n" + `{"id":8,"error":{"code":103,"message":"permission denied"}}` + "\n" + cfConnectReply + "\n" + "garbage\n"

	var lines []cfLine
	cfLines([]byte(frame), func(line []byte) { lines = append(lines, parseCFLine(line)) })
	want := []struct {
		kind cfKind
		id   uint32
	}{{cfPub, 0}, {cfPublished, 7}, {cfPing, 0}, {cfError, 8}, {cfOther, 1}, {cfBad, 0}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i, w := range want {
		if lines[i].Kind != w.kind || lines[i].ID != w.id {
			t.Errorf("line %d (%s): kind %d id %d, want kind %d id %d", i, lines[i].Raw, lines[i].Kind, lines[i].ID, w.kind, w.id)
		}
	}
	got, ok := parseMsgID(lines[0].MsgID)
	if !ok || got != id {
		t.Errorf("push carried client_msg_id %q = %+v, want %+v", lines[0].MsgID, got, id)
	}

	// A single line without a newline is a frame too; an id that is not a number is unreadable.
	n := 0
	cfLines([]byte(`{"id":12,"publish":{}}`), func(line []byte) {
		n++
		if l := parseCFLine(line); l.Kind != cfPublished || l.ID != 12 {
			t.Errorf("lone publish reply: %+v", l)
		}
	})
	if n != 1 {
		t.Errorf("%d lines in a one-line frame", n)
	}
	if l := parseCFLine([]byte(`{"id":x,"publish":{}}`)); l.Kind != cfBad {
		t.Errorf("bad id classified as %d", l.Kind)
	}
}

func TestCentrifugoCommandsAreTheProtocolsJSON(t *testing.T) {
	var conn struct {
		ID      uint32 `json:"id"`
		Connect struct {
			Token string `json:"token"`
			Name  string `json:"name"`
		} `json:"connect"`
	}
	if err := json.Unmarshal(appendCFConnect(nil, 1, `tok"en`, "bench"), &conn); err != nil || conn.ID != 1 ||
		conn.Connect.Token != `tok"en` || conn.Connect.Name != "bench" {
		t.Errorf("connect: %+v %v", conn, err)
	}
	var sub struct {
		ID        uint32 `json:"id"`
		Subscribe struct {
			Channel string `json:"channel"`
			Recover bool   `json:"recover"`
			Epoch   string `json:"epoch"`
			Offset  uint64 `json:"offset"`
		} `json:"subscribe"`
	}
	if err := json.Unmarshal(appendCFSubscribe(nil, 2, "chat:x", true, "ep", 9999), &sub); err != nil || sub.ID != 2 ||
		sub.Subscribe.Channel != "chat:x" || !sub.Subscribe.Recover || sub.Subscribe.Epoch != "ep" || sub.Subscribe.Offset != 9999 {
		t.Errorf("recovering subscribe: %+v %v", sub, err)
	}
	if b := appendCFSubscribe(nil, 3, "chat:y", false, "", 0); bytes.Contains(b, []byte("recover")) {
		t.Errorf("plain subscribe asks to recover: %s", b)
	}

	r, err := decodeCFReply([]byte(`{"id":2,"subscribe":{"recoverable":true,"epoch":"e","publications":[{"data":{"a":1},"offset":4},{"data":{"a":2},"offset":5}],"recovered":true,"offset":5,"was_recovering":true}}`))
	if err != nil || r.Subscribe == nil || !r.Subscribe.Recovered || r.Subscribe.Offset != 5 || len(r.Subscribe.Publications) != 2 || r.Subscribe.Epoch != "e" {
		t.Errorf("recovered subscribe reply: %+v %v", r.Subscribe, err)
	}
	r, err = decodeCFReply([]byte(`{"push":{"disconnect":{"code":3008,"reason":"slow","reconnect":true}}}`))
	if err != nil || r.Push == nil || r.Push.Disconnect == nil || r.Push.Disconnect.Code != 3008 {
		t.Errorf("disconnect push: %+v %v", r.Push, err)
	}
}

func TestCentrifugoTokenIsHS256WithSubject(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok, err := cfToken(secret, "u7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var rc jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(tok, &rc, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()); err != nil || rc.Subject != "u7" {
		t.Errorf("token %s: subject %q, %v", tok, rc.Subject, err)
	}
}

// fakeCentrifugo accepts one WebSocket and runs serve on it.
func fakeCentrifugo(t *testing.T, serve func(ctx context.Context, c *websocket.Conn)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		serve(r.Context(), c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func readLine(ctx context.Context, t *testing.T, c *websocket.Conn) string {
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Errorf("fake server read: %v", err)
	}
	return string(b)
}

// The handshake answers a ping that comes before its replies, and takes the replies from one
// newline-delimited frame; then the load client answers pings and counts a push.
func TestCentrifugoClientAnswersPingsAndReadsBatchedReplies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := msgID{phase: 1, conn: 0, n: 1, sent: time.Millisecond}
	data := `{"text":"x","client_msg_id":"` + string(appendMsgID(nil, id)) + `"}`
	result := make(chan string, 4)
	url := fakeCentrifugo(t, func(ctx context.Context, c *websocket.Conn) {
		result <- readLine(ctx, t, c) // connect and subscribe, one per line
		_ = c.Write(ctx, websocket.MessageText, []byte("{}"))
		result <- readLine(ctx, t, c) // the pong
		_ = c.Write(ctx, websocket.MessageText, []byte(cfConnectReply+"\n"+cfSubReply))
		// Load: a ping and a push in one frame.
		_ = c.Write(ctx, websocket.MessageText, []byte("{}\n"+cfPushOf(data, 1)))
		result <- readLine(ctx, t, c)
		for { // until the client closes
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	})
	ws, err := dialCF(ctx, wsHTTPClient(), url)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := cfHandshake(ctx, ws, "tok", "bench", []cfSub{{channel: "chat:a"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-result; got != `{"id":1,"connect":{"token":"tok","name":"bench"}}`+"\n"+`{"id":2,"subscribe":{"channel":"chat:a"}}` {
		t.Errorf("handshake frame %s", got)
	}
	if got := <-result; got != "{}" {
		t.Errorf("ping answered with %q", got)
	}
	if len(replies) != 1 || string(replies[0]) != cfSubReply {
		t.Errorf("subscribe replies %q", replies)
	}

	e := &peerEngine{epoch: time.Now()}
	c := newPeerConn(e, 0, 0, ws, true)
	e.conns = []*peerConn{c, {user: 1}}
	st := &clientStats{phase: 1, errs: map[string]uint64{}}
	c.mu.Lock()
	c.st = st
	c.mu.Unlock()
	go c.read()
	if got := <-result; got != "{}" {
		t.Errorf("load client answered a ping with %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := st.delivered
		c.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the push was not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = ws.CloseNow()
	<-c.done
}

// A publish reply acks the message its command carried and an error reply refuses it; a send
// stays outstanding (holds its window token) until it is refused or its message comes back.
func TestCentrifugoRepliesAckAndRefuseByCommandID(t *testing.T) {
	e := &peerEngine{epoch: time.Now()}
	c := newPeerConn(e, 0, 0, nil, true)
	e.conns = []*peerConn{c}
	st := &clientStats{phase: 2, errs: map[string]uint64{}}
	c.st, c.window = st, make(chan struct{}, 4)
	c.window <- struct{}{}
	c.window <- struct{}{}
	c.pending[101] = msgID{phase: 2, conn: 0, n: 1}
	c.pending[102] = msgID{phase: 2, conn: 0, n: 2}
	cfLines([]byte(`{"id":101,"publish":{}}`+"\n"+`{"id":102,"error":{"code":103,"message":"permission denied"}}`+"\n"+`{"id":999,"publish":{}}`), c.handleCF)
	if st.acked != 1 || st.errs["103 permission denied"] != 1 || len(c.window) != 1 || len(c.pending) != 0 {
		t.Errorf("acked %d, errors %v, window %d, pending %v", st.acked, st.errs, len(c.window), c.pending)
	}
	own := `{"text":"x","client_msg_id":"` + string(appendMsgID(nil, msgID{phase: 2, conn: 0, n: 1})) + `"}`
	cfLines([]byte(cfPushOf(own, 1)), c.handleCF)
	if st.delivered != 1 || len(c.window) != 0 {
		t.Errorf("own message back: delivered %d, window %d", st.delivered, len(c.window))
	}
}

func TestSpreadMedianAndRatio(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{nan, nan}, Spread{}},
		{[]float64{3}, Spread{N: 1, Median: 3, Min: 3, Max: 3}},
		{[]float64{5, 1, 3}, Spread{N: 3, Median: 3, Min: 1, Max: 5}},
		{[]float64{4, nan, 1, 2, 10}, Spread{N: 4, Median: 3, Min: 1, Max: 10}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if q := peerRatio(Spread{N: 3, Median: 0.3}, Spread{N: 3, Median: 0.03}); math.Abs(q-10) > 1e-9 {
		t.Errorf("ratio %v, want 10", q)
	}
	if q := peerRatio(Spread{N: 3, Median: 1}, Spread{}); !math.IsNaN(q) {
		t.Errorf("ratio against an unmeasured figure: %v", q)
	}
	if q := peerRatio(Spread{N: 3, Median: 1}, Spread{N: 1, Median: 0}); !math.IsNaN(q) {
		t.Errorf("ratio against zero: %v", q)
	}
}

// The report's rows are medians over each server's rounds, with their range and the ratio of
// the medians; a figure one server did not measure in a round is left out of its spread.
func TestPeersReportFigures(t *testing.T) {
	flat := func(cpu, delivered float64, p99 float64) *LoadResult {
		return &LoadResult{Scenario: Scenario1to1, Mode: ModeFlat, Members: 2, Seconds: 5, CPUSeconds: cpu,
			DeliveredMsgsPerSec: delivered, DeliverLatency: Latency{Count: 100, P50: 1, P99: p99}, OtherCores: 0.05}
	}
	withCalls := func(p *LoadResult, reads, writes uint64) *LoadResult {
		p.Calls = &procstat.Calls{Reads: reads, Writes: writes}
		return p
	}
	rep := &PeersReport{Rounds: []*PeerRound{
		{Server: ServerNatter, Round: 1, Phases: []*LoadResult{withCalls(flat(5, 4000, 30), 10_000, 50_000)}, CatchUp: &CatchUpResult{Messages: 10, Received: 10, Seconds: 2}},
		{Server: ServerCentrifugo, Round: 1, Phases: []*LoadResult{withCalls(flat(1, 20000, 5), 20_000, 30_000)}, CatchUp: &CatchUpResult{Messages: 10, Received: 10, Seconds: 0.5}},
		{Server: ServerNatter, Round: 2, Phases: []*LoadResult{withCalls(flat(6, 4000, 50), 20_000, 60_000)}, CatchUp: &CatchUpResult{Messages: 10, Received: 9, Seconds: 1}},
		{Server: ServerCentrifugo, Round: 2, Phases: []*LoadResult{flat(1, 25000, 7)}, Idle: &MemResult{Held: 10, Requested: 10, RSSPerConn: 4096}},
		{Server: ServerNatter, Round: 3, Phases: []*LoadResult{flat(8, 4000, 40)}, Error: "boom"},
		{Server: ServerCentrifugo, Round: 3, Phases: []*LoadResult{flat(1, 10000, 6)}},
	}}
	rep.finish()
	fig := map[string]PeerFigure{}
	for _, f := range rep.Figures {
		fig[f.Name] = f
	}
	cpu := fig["1:1 flat-out: server CPU s / 1000 delivered msgs"]
	// natter: 5, 6, 8 CPU s over 20,000 delivered = 0.25, 0.30, 0.40; Centrifugo: 1 s over
	// 100,000, 125,000, 50,000 = 0.01, 0.008, 0.02.
	if cpu.Natter.N != 3 || !near(cpu.Natter.Median, 0.30) || !near(cpu.Natter.Min, 0.25) || !near(cpu.Natter.Max, 0.40) {
		t.Errorf("natter CPU per 1000: %+v", cpu.Natter)
	}
	if !near(cpu.Centrifugo.Median, 0.01) || !near(cpu.Centrifugo.Min, 0.008) || !near(cpu.Centrifugo.Max, 0.02) {
		t.Errorf("centrifugo CPU per 1000: %+v", cpu.Centrifugo)
	}
	if cpu.Ratio == nil || !near(*cpu.Ratio, 30) || !cpu.LowerIsBetter {
		t.Errorf("CPU ratio %v", cpu.Ratio)
	}
	// Calls: natter 60,000 and 80,000 over 20,000 delivered; Centrifugo 50,000 over 100,000,
	// its other rounds not counted.
	if c := fig["1:1 flat-out: server read+write calls / delivered msg"]; c.Natter.N != 2 || !near(c.Natter.Median, 3.5) ||
		c.Centrifugo.N != 1 || !near(c.Centrifugo.Median, 0.5) || !near(*c.Ratio, 7) {
		t.Errorf("calls: %+v", c)
	}
	if p99 := fig["1:1 flat-out: send→deliver p99"]; !near(p99.Natter.Median, 40) || !near(p99.Centrifugo.Median, 6) || !near(*p99.Ratio, 40.0/6) {
		t.Errorf("p99: %+v", p99)
	}
	// Catch-up: natter's second round received 9 of 10, so it is not a measurement.
	if cu := fig["catch-up: time to receive all missed messages"]; cu.Natter.N != 1 || cu.Natter.Median != 2 || cu.Centrifugo.N != 1 || !near(*cu.Ratio, 4) {
		t.Errorf("catch-up: %+v", cu)
	}
	// Idle: only Centrifugo measured it; no ratio.
	if idle := fig["idle: server RSS per connection"]; idle.Centrifugo.Median != 4 || idle.Natter.N != 0 || idle.Ratio != nil {
		t.Errorf("idle: %+v", idle)
	}
	if _, ok := fig["group flat-out: deliveries/s"]; ok {
		t.Error("a figure no round measured is in the table")
	}
	// Busy-ness: natter's three load phases (0.05) and two catch-ups (0).
	if b := rep.Busy[ServerNatter]; b.N != 5 || !near(b.Median, 0.05) || b.Min != 0 {
		t.Errorf("busy-ness %+v", rep.Busy)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| figure | natter | Centrifugo | natter / Centrifugo |",
		"| 1:1 flat-out: server CPU s / 1000 delivered msgs (s) | 0.3 (0.25–0.4) | 0.01 (0.008–0.02) | 30.00× |",
		"natter round 3: boom"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// lagSide is a peerSide whose search backlog follows a script: lags[i] at the i-th read, then
// the last value for good.
type lagSide struct {
	peerSide
	lags  []uint64
	reads int
}

func (s *lagSide) searchLag(context.Context) (uint64, bool) {
	lag := s.lags[min(s.reads, len(s.lags)-1)]
	s.reads++
	return lag, true
}

// TestWaitSearchStopsWhenNothingTakesFromSearch: the bench waits for search's backlog to come
// back, and gives up soon (not after the whole settle time) when it does not fall at all: a
// natter running without search, whose idle CPU the wait would count.
func TestWaitSearchStopsWhenNothingTakesFromSearch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lags       []uint64
		back, fell bool
	}{
		{"catches up", []uint64{9000, 7000, 3000, 900}, true, true},
		{"falls, then stalls", []uint64{9000, 8000}, false, true},
		{"never falls", []uint64{9000}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &peerEngine{side: &lagSide{lags: tc.lags}}
			start := time.Now()
			back, fell := e.waitSearch(t.Context(), 1000, time.Minute)
			if back != tc.back || fell != tc.fell {
				t.Fatalf("back %v, fell %v; want %v, %v", back, fell, tc.back, tc.fell)
			}
			if took := time.Since(start); took > searchStall+10*time.Second {
				t.Fatalf("waited %s: the stall should end it after about %s", took, searchStall)
			}
		})
	}
}

func TestParseNatterVariant(t *testing.T) {
	v, err := ParseNatterVariant("no-search=--target gateway,api,persister  --log-level warn")
	if err != nil || v.Name != "no-search" || !slices.Equal(v.Args, []string{"--target", "gateway,api,persister", "--log-level", "warn"}) {
		t.Fatalf("got %+v, %v", v, err)
	}
	for _, bad := range []string{"", "no-search", "=--target api", "no search=--target api", "x:y=--pprof", "empty=", "blank=   "} {
		if v, err := ParseNatterVariant(bad); err == nil {
			t.Errorf("%q: accepted as %+v", bad, v)
		}
	}
}

// Variants run after natter in every round pair, with their arguments after natter's own and
// without the profile natter's first round takes; two of one name are refused.
func TestPeersVariantsRunAfterNatter(t *testing.T) {
	cfg := DefaultPeersConfig()
	cfg.NatterArgs, cfg.NatterProfile = []string{"--log-level", "warn"}, "natter.prof"
	cfg.Variants = []NatterVariant{{Name: "a", Args: []string{"--target", "gateway"}}, {Name: "b", Args: []string{"--pprof"}}}
	if got := cfg.lineup(); !slices.Equal(got, []string{"natter", "natter:a", "natter:b", "centrifugo"}) {
		t.Errorf("lineup %q", got)
	}
	a := cfg.forServer("natter:a")
	if !slices.Equal(a.NatterArgs, []string{"--log-level", "warn", "--target", "gateway"}) || a.NatterProfile != "" {
		t.Errorf("variant a runs with %q, profile %q", a.NatterArgs, a.NatterProfile)
	}
	if n := cfg.forServer(ServerNatter); !slices.Equal(n.NatterArgs, []string{"--log-level", "warn"}) || n.NatterProfile != "natter.prof" {
		t.Errorf("natter runs with %q, profile %q", n.NatterArgs, n.NatterProfile)
	}
	cfg.Servers = []string{ServerCentrifugo}
	if got := cfg.lineup(); !slices.Equal(got, []string{"natter:a", "natter:b", "centrifugo"}) {
		t.Errorf("lineup without natter %q", got)
	}
	cfg.Variants = append(cfg.Variants, NatterVariant{Name: "a", Args: []string{"--pprof"}})
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"a" named twice`) {
		t.Errorf("two variants named a: %v", err)
	}
}

// A variant's rows are its own rounds' medians and their ratio to Centrifugo's, in columns after
// natter's.
func TestPeersReportVariants(t *testing.T) {
	flat := func(cpu float64) []*LoadResult {
		return []*LoadResult{{Scenario: Scenario1to1, Mode: ModeFlat, Members: 2, Seconds: 5, CPUSeconds: cpu,
			DeliveredMsgsPerSec: 2000, DeliverLatency: Latency{Count: 100, P50: 1, P99: 10}, OtherCores: 0.01}}
	}
	nosearch := NatterVariant{Name: "no-search", Args: []string{"--target", "gateway,api,persister,fanout"}}
	rep := &PeersReport{Variants: []NatterVariant{nosearch}, Rounds: []*PeerRound{
		{Server: ServerNatter, Round: 1, Phases: flat(5)},
		{Server: nosearch.server(), Round: 1, Phases: flat(3)},
		{Server: ServerCentrifugo, Round: 1, Phases: flat(1)},
		{Server: ServerNatter, Round: 2, Phases: flat(6)},
		{Server: nosearch.server(), Round: 2, Phases: flat(4), Error: "boom"},
		{Server: ServerCentrifugo, Round: 2, Phases: flat(1)},
	}}
	rep.finish()
	cpu := rep.Figures[0]
	// 10,000 delivered a round: natter 0.5 and 0.6, the variant 0.3 and 0.4, Centrifugo 0.1.
	if len(cpu.Variants) != 1 || cpu.Variants[0].Name != "no-search" || cpu.Variants[0].Spread.N != 2 ||
		!near(cpu.Variants[0].Spread.Median, 0.35) || cpu.Variants[0].Ratio == nil || !near(*cpu.Variants[0].Ratio, 3.5) {
		t.Errorf("variant's CPU: %+v", cpu.Variants)
	}
	if !near(cpu.Natter.Median, 0.55) || !near(*cpu.Ratio, 5.5) {
		t.Errorf("natter's CPU: %+v", cpu)
	}
	if b := rep.Busy[nosearch.server()]; b.N != 2 {
		t.Errorf("variant's busy-ness: %+v", rep.Busy)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"natter variant no-search: natter run --target gateway,api,persister,fanout",
		"natter:no-search rounds 0.01",
		"| figure | natter | natter:no-search | Centrifugo | natter / Centrifugo | natter:no-search / Centrifugo |\n|---|---|---|---|---|---|\n",
		"| 1:1 flat-out: server CPU s / 1000 delivered msgs (s) | 0.55 (0.5–0.6) | 0.35 (0.3–0.4) | 0.1 | 5.50× | 3.50× |",
		"natter:no-search round 2: boom",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
