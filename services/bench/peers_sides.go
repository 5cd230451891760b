package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// catchUpBatch is how many messages one connection sends in the catch-up scenario before the
// next connection takes over: natter allows a connection a burst of 200 frames (then 100/s),
// and the same shape is used on Centrifugo.
const catchUpBatch = 190

// catchUpConnBase numbers the catch-up senders' connections, apart from the load users'.
const catchUpConnBase = 1 << 20

// idleUsers is how many users the idle connections belong to (several devices each).
func idleUsers(k int) int { return max(1, min(20, k/100)) }

// natterSide is `natter run` in a directory of its own.
type natterSide struct {
	p     *proc
	t     *target
	base  string // http://<metrics address>: /debug/pprof/ is there with --pprof
	users []user // load users, then the catch-up pair, then the idle users
	pairs []string
	group string
	cu    string // the catch-up pair's conversation
}

func startNatterSide(ctx context.Context, cfg PeersConfig) (*natterSide, error) {
	args := cfg.NatterArgs
	if cfg.NatterProfile != "" {
		args = append(slices.Clip(args), "--pprof")
	}
	p, a, err := startNatterProc(ctx, cfg.NatterBin, args)
	if err != nil {
		return nil, err
	}
	t, err := startTarget(ctx, Config{APIURL: a.API, WSURL: a.WebSocket, PID: p.pid(), NATSURL: a.NATS, MetricsURL: a.Metrics}, cfg.Log)
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	return &natterSide{p: p, t: t, base: strings.TrimSuffix(a.Metrics, "/metrics")}, nil
}

func (s *natterSide) name() string { return ServerNatter }
func (s *natterSide) pid() int     { return s.p.pid() }

func (s *natterSide) profile(cfg PeersConfig) (string, string) { return cfg.NatterProfile, s.base }

func (s *natterSide) stop() error {
	err := s.t.stop()
	if perr := s.p.stop(); perr != nil {
		return perr
	}
	return err
}

func (s *natterSide) setup(ctx context.Context, e *peerEngine) error {
	cfg := e.cfg
	n := cfg.Users + 2 + idleUsers(cfg.IdleConns)
	s.users = make([]user, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			u, err := s.t.signup(gctx, fmt.Sprintf("p%s_%d", e.tag, i))
			s.users[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	s.pairs = make([]string, cfg.Users/2)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range s.pairs {
		g.Go(func() error {
			id, err := s.t.direct(gctx, s.users[2*i], s.users[2*i+1])
			s.pairs[i] = id
			return err
		})
	}
	g.Go(func() error {
		id, err := s.t.direct(gctx, s.users[cfg.Users], s.users[cfg.Users+1])
		s.cu = id
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if cfg.has(PeerGroup) {
		id, n, err := s.t.group(ctx, s.users[0], s.users[1:cfg.GroupSize], "peers "+e.tag)
		if err != nil {
			return err
		}
		if n != 0 && n != cfg.GroupSize {
			return fmt.Errorf("group created with %d members, asked for %d", n, cfg.GroupSize)
		}
		s.group = id
	}
	return nil
}

func (s *natterSide) pairConv(i int) string { return s.pairs[i] }
func (s *natterSide) groupConv() string     { return s.group }

// wsURL is the socket URL of a device; cursor < 0 asks for no replay.
func (s *natterSide) wsURL(u user, device string, cursor int64) string {
	sep := "?"
	if strings.Contains(s.t.wsURL, "?") {
		sep = "&"
	}
	// frames=lines, as natter's Go SDK asks: several frames to a message, as Centrifugo sends.
	v := s.t.wsURL + sep + "token=" + url.QueryEscape(u.Token) + "&device=" + device + "&" + protocol.FramesParam + "=" + protocol.FramesLines
	if cursor >= 0 {
		v += "&cursor=" + strconv.FormatInt(cursor, 10)
	}
	return v
}

// dialNatter opens a device and reads until its synced frame; it returns the socket, the
// synced cursor and the message frames that came before it. Frames after synced in its
// message are dropped (nothing is sent while a device dials).
func (s *natterSide) dialNatter(ctx context.Context, e *peerEngine, u user, device string, cursor int64) (*websocket.Conn, int64, int, error) {
	ws, err := dialWS(ctx, e.hc, s.wsURL(u, device, cursor))
	if err != nil {
		return nil, 0, 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var buf []byte
	messages := 0
	for {
		if buf, err = readFrame(rctx, ws, buf); err != nil {
			_ = ws.CloseNow()
			return nil, 0, messages, fmt.Errorf("before synced: %w", err)
		}
		for frame := range protocol.Frames(buf) {
			switch {
			case bytes.HasPrefix(frame, prefixMessage):
				messages++
			case bytes.HasPrefix(frame, prefixSynced):
				var f struct {
					Cursor int64 `json:"cursor"`
				}
				if err := json.Unmarshal(frame, &f); err != nil {
					_ = ws.CloseNow()
					return nil, 0, messages, fmt.Errorf("synced frame %s: %w", frame, err)
				}
				return ws, f.Cursor, messages, nil
			}
		}
	}
}

func (s *natterSide) dial(ctx context.Context, e *peerEngine, idx, u int, device string, _ []string) (*peerConn, error) {
	ws, _, _, err := s.dialNatter(ctx, e, s.users[u], device, -1)
	if err != nil {
		return nil, err
	}
	return newPeerConn(e, idx, u, ws, false), nil
}

func (s *natterSide) backlog(ctx context.Context) uint64 {
	n, err := s.t.consumerBacklog(ctx)
	if err != nil {
		return 0
	}
	return n
}

func (s *natterSide) searchLag(ctx context.Context) (uint64, bool) {
	n, err := s.t.searchBacklog(ctx)
	return n, err == nil
}

func (s *natterSide) idle(ctx context.Context, e *peerEngine, exe string) (*MemResult, error) {
	var tokens []string
	for _, u := range s.users[e.cfg.Users+2:] {
		tokens = append(tokens, u.Token)
	}
	job := idleJob{URL: s.t.wsURL, Tokens: tokens, DevicePfx: "idle", N: e.cfg.IdleConns, WaitSynced: true}
	return measureIdle(ctx, exe, ServerNatter, job, false, s.pid(), "")
}

func (s *natterSide) catchUp(ctx context.Context, e *peerEngine) (*CatchUpResult, error) {
	cfg := e.cfg
	sender, receiver := s.users[cfg.Users], s.users[cfg.Users+1]
	ws, cursor, _, err := s.dialNatter(ctx, e, receiver, "away", -1)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	err = sendInBatches(ctx, cfg.CatchUp, func(k int) (*peerConn, error) {
		ws, _, _, err := s.dialNatter(ctx, e, sender, fmt.Sprintf("s%d", k), -1)
		if err != nil {
			return nil, err
		}
		return newPeerConn(e, catchUpConnBase+k, cfg.Users, ws, false), nil
	}, s.cu)
	if err != nil {
		return nil, err
	}
	// Every message stored and routed before the device comes back.
	deadline := time.Now().Add(cfg.Settle)
	for s.backlog(ctx) > 0 && time.Now().Before(deadline) {
		sleep(ctx, 50*time.Millisecond)
	}
	waitQuiet(ctx, s.pid(), 15*time.Second)

	cont := startContention(cpuMeter{pid: s.pid()})
	t0 := time.Now()
	ws, _, got, err := s.dialNatter(ctx, e, receiver, "away", cursor)
	el := time.Since(t0)
	res := &CatchUpResult{Messages: cfg.CatchUp, Received: got, Seconds: el.Seconds(), OtherCores: cont.otherCores(el)}
	if err != nil {
		return res, fmt.Errorf("reconnect with cursor %d: %w", cursor, err)
	}
	_ = ws.CloseNow()
	if got != cfg.CatchUp {
		res.Note = fmt.Sprintf("received %d of %d before synced", got, cfg.CatchUp)
	}
	return res, nil
}

// sendInBatches sends n messages into conv from fresh connections made by open, catchUpBatch
// each, sending again what was refused.
func sendInBatches(ctx context.Context, n int, open func(k int) (*peerConn, error), conv string) error {
	for k, left := 0, n; left > 0; k++ {
		if k > 4*n/catchUpBatch+10 {
			return fmt.Errorf("%d of %d messages still refused", left, n)
		}
		c, err := open(k)
		if err != nil {
			return fmt.Errorf("sender %d: %w", k, err)
		}
		go c.read()
		acked, err := c.sendBatch(ctx, conv, min(left, catchUpBatch), 64, 30*time.Second)
		_ = c.ws.CloseNow()
		<-c.done
		if err != nil {
			return fmt.Errorf("sender %d: %w", k, err)
		}
		left -= acked
	}
	return nil
}

// cfSide is Centrifugo with newCFConfig.
type cfSide struct {
	p      *proc
	base   string // http://127.0.0.1:port
	ws     string
	secret []byte
	tag    string
}

func startCFSide(ctx context.Context, cfg PeersConfig) (*cfSide, error) {
	p, base, secret, err := startCentrifugoProc(ctx, cfg.CentrifugoBin, max(1000, cfg.CatchUp), cfg.Log)
	if err != nil {
		return nil, err
	}
	return &cfSide{p: p, base: base, ws: "ws" + strings.TrimPrefix(base, "http") + "/connection/websocket", secret: secret}, nil
}

func (s *cfSide) name() string { return ServerCentrifugo }
func (s *cfSide) pid() int     { return s.p.pid() }
func (s *cfSide) stop() error  { return s.p.stop() }

// Centrifugo has no accounts or conversations: users are the subjects of the tokens the bench
// signs, and a conversation is a channel its members subscribe to.
func (s *cfSide) setup(_ context.Context, e *peerEngine) error {
	s.tag = e.tag
	return nil
}

func (s *cfSide) pairConv(i int) string { return fmt.Sprintf("%s:p%s-%d", cfNS, s.tag, i) }
func (s *cfSide) groupConv() string     { return fmt.Sprintf("%s:g%s", cfNS, s.tag) }

func (s *cfSide) token(user string) (string, error) { return cfToken(s.secret, user, 2*time.Hour) }

// dialCentrifugo connects as user and subscribes to subs; it returns the socket and the
// subscribe replies.
func (s *cfSide) dialCentrifugo(ctx context.Context, e *peerEngine, user string, subs []cfSub) (*websocket.Conn, [][]byte, error) {
	tok, err := s.token(user)
	if err != nil {
		return nil, nil, err
	}
	ws, err := dialCF(ctx, e.hc, s.ws)
	if err != nil {
		return nil, nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	replies, err := cfHandshake(hctx, ws, tok, "natter-bench", subs)
	if err != nil {
		_ = ws.CloseNow()
		return nil, nil, err
	}
	return ws, replies, nil
}

func (s *cfSide) dial(ctx context.Context, e *peerEngine, idx, u int, _ string, convs []string) (*peerConn, error) {
	subs := make([]cfSub, len(convs))
	for i, c := range convs {
		subs[i] = cfSub{channel: c}
	}
	ws, _, err := s.dialCentrifugo(ctx, e, "u"+strconv.Itoa(u), subs)
	if err != nil {
		return nil, err
	}
	return newPeerConn(e, idx, u, ws, true), nil
}

func (s *cfSide) backlog(context.Context) uint64 { return 0 }

func (s *cfSide) searchLag(context.Context) (uint64, bool) { return 0, false }

// idle holds connections like natter's idle devices: several per user, each subscribed to its
// user's own channel (what a chat client on Centrifugo listens on).
func (s *cfSide) idle(ctx context.Context, e *peerEngine, exe string) (*MemResult, error) {
	n := idleUsers(e.cfg.IdleConns)
	job := idleJob{URL: s.ws, N: e.cfg.IdleConns, Centrifugo: true}
	for i := range n {
		tok, err := s.token(fmt.Sprintf("idle%d", i))
		if err != nil {
			return nil, err
		}
		job.Tokens = append(job.Tokens, tok)
		job.Channels = append(job.Channels, fmt.Sprintf("%s:u%s-idle%d", cfNS, s.tag, i))
	}
	return measureIdle(ctx, exe, ServerCentrifugo, job, false, s.pid(), "")
}

func (s *cfSide) catchUp(ctx context.Context, e *peerEngine) (*CatchUpResult, error) {
	cfg := e.cfg
	ch := fmt.Sprintf("%s:c%s", cfNS, s.tag)
	ws, replies, err := s.dialCentrifugo(ctx, e, "cu-receiver", []cfSub{{channel: ch}})
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	first, err := decodeCFReply(replies[0])
	if err != nil || first.Subscribe == nil {
		return nil, fmt.Errorf("subscribe reply %s: %v", replies[0], err)
	}
	pos := first.Subscribe
	if !pos.Recoverable {
		return nil, fmt.Errorf("channel %s is not recoverable: check the namespace's history and recovery options", ch)
	}
	err = sendInBatches(ctx, cfg.CatchUp, func(k int) (*peerConn, error) {
		ws, _, err := s.dialCentrifugo(ctx, e, "cu-sender", []cfSub{{channel: ch}})
		if err != nil {
			return nil, err
		}
		return newPeerConn(e, catchUpConnBase+k, cfg.Users, ws, true), nil
	}, ch)
	if err != nil {
		return nil, err
	}
	waitQuiet(ctx, s.pid(), 15*time.Second)

	cont := startContention(cpuMeter{pid: s.pid()})
	t0 := time.Now()
	ws, replies, err = s.dialCentrifugo(ctx, e, "cu-receiver", []cfSub{{channel: ch, recover: true, epoch: pos.Epoch, offset: pos.Offset}})
	el := time.Since(t0)
	res := &CatchUpResult{Messages: cfg.CatchUp, Seconds: el.Seconds(), OtherCores: cont.otherCores(el)}
	if err != nil {
		return res, fmt.Errorf("recovering subscribe: %w", err)
	}
	_ = ws.CloseNow()
	res.Received = bytes.Count(replies[0], keyClientMsg)
	r, err := decodeCFReply(replies[0])
	switch {
	case err != nil || r.Subscribe == nil:
		res.Note = fmt.Sprintf("undecodable recovery reply: %v", err)
	case !r.Subscribe.Recovered:
		res.Note = fmt.Sprintf("not recovered (%d publications in the reply): history or recovery_max_publication_limit too small?", len(r.Subscribe.Publications))
	case res.Received != cfg.CatchUp:
		res.Note = fmt.Sprintf("received %d of %d", res.Received, cfg.CatchUp)
	}
	return res, nil
}

func (s *cfSide) profile(cfg PeersConfig) (string, string) { return cfg.CentrifugoProfile, s.base }

// cpuProfile starts a CPU profile of the server whose /debug/pprof/ is at base, covering a
// phase's measured window (after warmup, for duration), and returns a function that waits for it
// and writes it to path.
func cpuProfile(ctx context.Context, base, path string, warmup, duration time.Duration) func() error {
	done := make(chan error, 1)
	go func() {
		sleep(ctx, warmup)
		secs := max(1, int(duration.Round(time.Second)/time.Second))
		hc := &http.Client{Timeout: duration + 30*time.Second}
		resp, err := hc.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("status %d", resp.StatusCode)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return func() error { return <-done }
}
