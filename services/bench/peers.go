package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/natter-chat/natter/services/search"
	"github.com/natter-chat/natter/streams"
)

// `natter bench peers` measures natter beside another chat server on the same machine, in the
// same run, with the same load: today Centrifugo v6 (built by `make bench-peers` from the Go
// module proxy into bin/, outside natter's modules). Both run as processes of their own, fresh
// for every round; rounds alternate (natter, Centrifugo, natter, ...) so that a machine that
// grows busier or quieter during the run affects both alike, and every figure is reported as
// the median over rounds with its spread, beside the other server's and as a ratio.

// The peers scenarios.
const (
	PeerFlat    = "1to1"    // users in pairs, one conversation (channel) per pair, flat out
	PeerPaced   = "paced"   // the same pairs at PeersConfig.Rate msgs/s in total
	PeerGroup   = "group"   // one conversation (channel) of GroupSize members, all sending, flat out
	PeerIdle    = "idle"    // IdleConns idle connections: the server's RSS per connection
	PeerCatchUp = "catchup" // a device offline while CatchUp messages arrive, then reconnecting
)

// AllPeerScenarios is the default.
var AllPeerScenarios = []string{PeerFlat, PeerPaced, PeerGroup, PeerIdle, PeerCatchUp}

// The servers.
const (
	ServerNatter     = "natter"
	ServerCentrifugo = "centrifugo"
)

// NatterVariant is natter run with more arguments, measured as a server of its own in every
// round pair, after natter: what natter costs without some of its parts, beside natter whole and
// Centrifugo in the same run.
type NatterVariant struct {
	Name string   `json:"name"`
	Args []string `json:"args"` // after PeersConfig.NatterArgs
}

// server is the variant's name among a run's servers (PeerRound.Server).
func (v NatterVariant) server() string { return ServerNatter + ":" + v.Name }

// ParseNatterVariant reads NAME=ARGS: a name of the shape of a natter id (streams.ValidToken:
// letters, digits, '_' and '-'), and the arguments to `natter run`, space-separated.
func ParseNatterVariant(s string) (NatterVariant, error) {
	name, args, ok := strings.Cut(s, "=")
	if !ok || !streams.ValidToken(name) {
		return NatterVariant{}, fmt.Errorf("natter variant %q: want NAME=ARGS, the name of letters, digits, '_' and '-'", s)
	}
	v := NatterVariant{Name: name, Args: strings.Fields(args)}
	if len(v.Args) == 0 {
		return NatterVariant{}, fmt.Errorf("natter variant %q: no arguments to natter run", s)
	}
	return v, nil
}

// PeersConfig is one `natter bench peers` run.
type PeersConfig struct {
	NatterBin     string   // natter's binary, run as `natter run`
	NatterArgs    []string // more arguments to `natter run` (e.g. --target without search)
	CentrifugoBin string   // Centrifugo's binary
	// Variants run after natter in every round pair (NatterVariant), with NatterBin.
	Variants []NatterVariant
	// Pairs is the number of round pairs (natter, its variants, Centrifugo).
	Pairs     int
	Scenarios []string
	Servers   []string // both by default; one of them to look at it alone

	Users     int     // simulated users in the 1:1 scenarios (pairs)
	Window    int     // outstanding sends per sender, flat out
	Rate      float64 // paced 1:1: msgs/s in total
	MsgSize   int     // characters of text per message
	GroupSize int     // members of the group (the first GroupSize users)
	IdleConns int     // idle connections
	CatchUp   int     // messages a device misses before it reconnects

	Duration time.Duration // measured time of each load phase
	Warmup   time.Duration // unmeasured time before it
	Settle   time.Duration // longest wait after a phase for outstanding acks and deliveries

	// CentrifugoProfile and NatterProfile, when set, receive a CPU profile of that server (from
	// its pprof endpoint; natter runs with --pprof) over the measured window of its first round's
	// ProfilePhase (PeerFlat, PeerPaced or PeerGroup; empty: PeerFlat).
	CentrifugoProfile string
	NatterProfile     string
	ProfilePhase      string

	Command  string
	Version  string // natter's
	Log      *zap.Logger
	Progress io.Writer
	SelfExe  string // the executable started for the idle clients; empty: this one
}

// DefaultPeersConfig is `natter bench peers` with no flags: about 5 minutes on 2 cores.
func DefaultPeersConfig() PeersConfig {
	return PeersConfig{
		NatterBin:     "bin/natter",
		CentrifugoBin: "bin/centrifugo",
		Pairs:         3,
		Scenarios:     AllPeerScenarios,
		Servers:       []string{ServerNatter, ServerCentrifugo},
		Users:         200,
		Window:        8,
		Rate:          3800,
		MsgSize:       100,
		GroupSize:     100,
		IdleConns:     5000,
		CatchUp:       10000,
		Duration:      5 * time.Second,
		Warmup:        time.Second,
		Settle:        30 * time.Second,
	}
}

// Validate checks the configuration.
func (c PeersConfig) Validate() error {
	for _, s := range c.Scenarios {
		if !slices.Contains(AllPeerScenarios, s) {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(AllPeerScenarios, ", "))
		}
	}
	for _, s := range c.Servers {
		if s != ServerNatter && s != ServerCentrifugo {
			return fmt.Errorf("unknown server %q (known: %s, %s)", s, ServerNatter, ServerCentrifugo)
		}
	}
	switch {
	case len(c.Scenarios) == 0:
		return errors.New("no scenario")
	case len(c.Servers) == 0:
		return errors.New("no server")
	case c.Pairs < 1:
		return errors.New("pairs must be at least 1")
	case c.Users < 2 || c.Users%2 == 1:
		return errors.New("users must be an even number, at least 2")
	case c.Window < 1 || c.Window > 1024:
		return errors.New("window must be 1..1024")
	case c.Rate <= 0 && c.has(PeerPaced):
		return errors.New("the paced scenario needs a positive rate")
	case c.MsgSize < 1 || c.MsgSize > 4000:
		return errors.New("message size must be 1..4000")
	case c.GroupSize < 2 || c.GroupSize > c.Users:
		return errors.New("group size must be 2..users")
	case c.IdleConns < 1 || c.CatchUp < 1:
		return errors.New("idle connections and catch-up messages must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0 || c.Settle <= 0:
		return errors.New("duration and settle must be positive, warmup not negative")
	case c.ProfilePhase != "" && c.ProfilePhase != PeerFlat && c.ProfilePhase != PeerPaced && c.ProfilePhase != PeerGroup:
		return fmt.Errorf("the profiled phase is one of %s, %s, %s", PeerFlat, PeerPaced, PeerGroup)
	}
	names := map[string]bool{}
	for _, v := range c.Variants {
		if names[v.Name] {
			return fmt.Errorf("natter variant %q named twice", v.Name)
		}
		names[v.Name] = true
	}
	for _, s := range c.lineup() {
		bin := c.NatterBin
		if s == ServerCentrifugo {
			bin = c.CentrifugoBin
		}
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s binary: %w (make bench-peers builds both)", s, err)
		}
	}
	return nil
}

func (c PeersConfig) has(s string) bool { return slices.Contains(c.Scenarios, s) }

// lineup is the servers of one round pair, in the order they run: natter, its variants,
// Centrifugo (those of Servers, and every variant).
func (c PeersConfig) lineup() []string {
	var out []string
	if slices.Contains(c.Servers, ServerNatter) {
		out = append(out, ServerNatter)
	}
	for _, v := range c.Variants {
		out = append(out, v.server())
	}
	if slices.Contains(c.Servers, ServerCentrifugo) {
		out = append(out, ServerCentrifugo)
	}
	return out
}

// forServer is the configuration server's rounds run with: a variant's arguments after
// NatterArgs, and no profile (profiles are of natter as it is and of Centrifugo).
func (c PeersConfig) forServer(server string) PeersConfig {
	for _, v := range c.Variants {
		if v.server() == server {
			c.NatterArgs = append(slices.Clip(c.NatterArgs), v.Args...)
			c.NatterProfile = ""
		}
	}
	return c
}

// RunPeers performs the rounds and returns the report; it stops early, with what it has, when
// ctx ends.
func RunPeers(ctx context.Context, cfg PeersConfig) (*PeersReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	// The servers run in directories of their own.
	for _, bin := range []*string{&cfg.NatterBin, &cfg.CentrifugoBin} {
		abs, err := filepath.Abs(*bin)
		if err != nil {
			return nil, err
		}
		*bin = abs
	}
	exe := cfg.SelfExe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable for the idle clients: %w", err)
		}
	}
	start := time.Now()
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench peers: %5.0fs "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
		}
	}
	rep := &PeersReport{Tool: "natter bench peers", Command: cfg.Command, Version: cfg.Version, StartedAt: start.UTC(),
		Host: Host{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)},
		Settings: PeerSettings{Pairs: cfg.Pairs, Scenarios: cfg.Scenarios, Users: cfg.Users, Window: cfg.Window, Rate: cfg.Rate,
			MsgSize: cfg.MsgSize, GroupSize: cfg.GroupSize, IdleConns: cfg.IdleConns, CatchUp: cfg.CatchUp,
			Duration: cfg.Duration.String(), Warmup: cfg.Warmup.String()},
		Variants: cfg.Variants, LoadAvgStart: loadAvg()}
	if slices.Contains(cfg.Servers, ServerCentrifugo) {
		rep.Centrifugo = binVersion(ctx, cfg.CentrifugoBin)
	}
	defer func() {
		rep.LoadAvgEnd = loadAvg()
		rep.Seconds = time.Since(start).Seconds()
		rep.finish()
	}()
	profiled := map[string]bool{} // servers whose first round was run (and profiled, if asked)
	for i := range cfg.Pairs {
		for _, server := range cfg.lineup() {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rc := cfg.forServer(server)
			if profiled[server] {
				rc.CentrifugoProfile, rc.NatterProfile = "", ""
			}
			profiled[server] = true
			round := runPeerRound(ctx, rc, server, i+1, exe, progress)
			rep.Rounds = append(rep.Rounds, round)
			if round.Error != "" {
				progress("%s round %d: %s", server, i+1, round.Error)
			}
		}
	}
	return rep, nil
}

// binVersion is the first line `bin version` prints.
func binVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}

// peerSide is the server of one round, as the load generator sees it.
type peerSide interface {
	name() string
	pid() int
	// setup creates what the round needs: the load users, their conversations (natter) or
	// channels (Centrifugo), the catch-up pair, the idle users.
	setup(ctx context.Context, e *peerEngine) error
	pairConv(pair int) string
	groupConv() string
	// dial connects device of user u as e.conns index idx (subscribed to convs on Centrifugo;
	// natter delivers by membership) and returns once it can send.
	dial(ctx context.Context, e *peerEngine, idx, u int, device string, convs []string) (*peerConn, error)
	// backlog is what the server has accepted but not yet handled (natter's consumers).
	backlog(ctx context.Context) uint64
	// searchLag is the events the server's search index has yet to take in; false when it has
	// none, or the lag is unknown.
	searchLag(ctx context.Context) (uint64, bool)
	idle(ctx context.Context, e *peerEngine, exe string) (*MemResult, error)
	catchUp(ctx context.Context, e *peerEngine) (*CatchUpResult, error)
	// profile is where cfg asks this server's CPU profile to go ("" for none) and the base URL
	// of its /debug/pprof/.
	profile(cfg PeersConfig) (path, base string)
	stop() error
}

// peerEngine drives one round's simulated users against one server.
type peerEngine struct {
	cfg   PeersConfig
	side  peerSide
	log   *zap.Logger
	epoch time.Time
	text  string
	hc    *http.Client
	tag   string // random: makes this round's names unique

	conns   []*peerConn
	readers sync.WaitGroup

	phase     atomic.Uint32
	measuring atomic.Bool
}

func (e *peerEngine) now() time.Duration { return time.Since(e.epoch) }

func (e *peerEngine) cpu() cpuMeter { return cpuMeter{pid: e.side.pid()} }

// PeerRound is one server's round: a fresh server process, every scenario once.
type PeerRound struct {
	Server  string         `json:"server"`
	Round   int            `json:"round"`
	Seconds float64        `json:"seconds"`
	Phases  []*LoadResult  `json:"phases,omitempty"`
	Idle    *MemResult     `json:"idle,omitempty"`
	CatchUp *CatchUpResult `json:"catch_up,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// CatchUpResult is one catch-up: a device misses Messages messages, then reconnects.
type CatchUpResult struct {
	Messages int `json:"messages"` // sent (and acknowledged) while the device was away
	Received int `json:"received"` // of them, received after reconnecting
	// Seconds is from the reconnect's dial to the last missed message (natter: its synced
	// frame; Centrifugo: the recovering subscribe's reply, which carries them all).
	Seconds    float64 `json:"seconds"`
	OtherCores float64 `json:"other_cores"`
	Note       string  `json:"note,omitempty"`
}

func runPeerRound(ctx context.Context, cfg PeersConfig, server string, round int, exe string, progress func(string, ...any)) *PeerRound {
	r := &PeerRound{Server: server, Round: round}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	fail := func(err error) *PeerRound {
		r.Error = err.Error()
		return r
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(36*36*36*36*36))
	e := &peerEngine{cfg: cfg, log: cfg.Log, epoch: time.Now(), text: strings.Repeat("x", cfg.MsgSize), hc: wsHTTPClient(),
		tag: fmt.Sprintf("%05s", n.Text(36))}
	defer e.hc.CloseIdleConnections()
	progress("%s round %d: starting %s", server, round, server)
	var err error
	if server == ServerCentrifugo {
		e.side, err = startCFSide(ctx, cfg)
	} else {
		e.side, err = startNatterSide(ctx, cfg) // natter, or a variant (cfg.forServer)
	}
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := e.side.stop(); err != nil {
			cfg.Log.Warn("stop server", zap.String("server", server), zap.Error(err))
		}
	}()
	progress("%s round %d: setting up users and conversations", server, round)
	if err := e.side.setup(ctx, e); err != nil {
		return fail(fmt.Errorf("setup: %w", err))
	}

	// Idle first, on a fresh process: what the connections add to its RSS is not hidden in
	// memory earlier phases freed but the runtime kept.
	if cfg.has(PeerIdle) {
		waitQuiet(ctx, e.side.pid(), 10*time.Second)
		progress("%s round %d: %d idle connections", server, round, cfg.IdleConns)
		r.Idle, err = e.side.idle(ctx, e, exe)
		if err != nil {
			return fail(fmt.Errorf("idle connections: %w", err))
		}
	}

	if cfg.has(PeerFlat) || cfg.has(PeerPaced) || cfg.has(PeerGroup) {
		waitQuiet(ctx, e.side.pid(), 15*time.Second)
		progress("%s round %d: connecting %d users", server, round, cfg.Users)
		if err := e.connect(ctx); err != nil {
			e.close()
			return fail(err)
		}
		err := e.load(ctx, r, progress)
		e.close()
		if err != nil {
			return fail(err)
		}
	}

	if cfg.has(PeerCatchUp) && ctx.Err() == nil {
		waitQuiet(ctx, e.side.pid(), 15*time.Second)
		progress("%s round %d: catch-up of %d messages", server, round, cfg.CatchUp)
		r.CatchUp, err = e.side.catchUp(ctx, e)
		if err != nil {
			return fail(fmt.Errorf("catch-up: %w", err))
		}
	}
	return r
}

// connect opens device 0 of every load user.
func (e *peerEngine) connect(ctx context.Context) error {
	cfg := e.cfg
	e.conns = make([]*peerConn, cfg.Users)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for u := range cfg.Users {
		g.Go(func() error {
			convs := []string{e.side.pairConv(u / 2)}
			if cfg.has(PeerGroup) && u < cfg.GroupSize {
				convs = append(convs, e.side.groupConv())
			}
			c, err := e.side.dial(gctx, e, u, u, "bench0", convs)
			if err != nil {
				return fmt.Errorf("connect user %d: %w", u, err)
			}
			e.conns[u] = c
			goClient(&e.readers, c.read)
			return nil
		})
	}
	return g.Wait()
}

func (e *peerEngine) close() {
	for _, c := range e.conns {
		if c != nil {
			_ = c.ws.CloseNow()
		}
	}
	e.readers.Wait()
	e.conns = nil
}

// peerPlan is one phase's traffic.
type peerPlan struct {
	key                  string // PeerFlat, PeerPaced, PeerGroup
	name, scenario, mode string
	rate                 float64
	senders              map[*peerConn]string // sender -> conversation or channel
	members              int
}

func (e *peerEngine) load(ctx context.Context, r *PeerRound, progress func(string, ...any)) error {
	cfg := e.cfg
	pairs := peerPlan{scenario: Scenario1to1, senders: map[*peerConn]string{}, members: 2}
	for u, c := range e.conns {
		pairs.senders[c] = e.side.pairConv(u / 2)
	}
	group := peerPlan{key: PeerGroup, scenario: ScenarioGroup, mode: ModeFlat, name: fmt.Sprintf("group(%d) flat-out", cfg.GroupSize),
		senders: map[*peerConn]string{}, members: cfg.GroupSize}
	for _, c := range e.conns[:cfg.GroupSize] {
		group.senders[c] = e.side.groupConv()
	}
	var plans []peerPlan
	if cfg.has(PeerFlat) {
		p := pairs
		p.key, p.mode, p.name = PeerFlat, ModeFlat, "1:1 flat-out"
		plans = append(plans, p)
	}
	if cfg.has(PeerPaced) {
		p := pairs
		p.key, p.mode, p.rate, p.name = PeerPaced, ModePaced, cfg.Rate, fmt.Sprintf("1:1 paced %.0f/s", cfg.Rate)
		plans = append(plans, p)
	}
	if cfg.has(PeerGroup) {
		plans = append(plans, group)
	}
	for i, p := range plans {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if i == 0 || p.scenario != plans[i-1].scenario {
			if err := e.probe(ctx, p.senders); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
		waitQuiet(ctx, e.side.pid(), 15*time.Second)
		progress("%s: %s, %d senders, %s", e.side.name(), p.name, len(p.senders), cfg.Duration)
		var prof func() error
		if path, base := e.side.profile(cfg); path != "" && p.key == cmp.Or(cfg.ProfilePhase, PeerFlat) {
			prof = cpuProfile(ctx, base, path, cfg.Warmup, cfg.Duration)
		}
		res, err := e.run(ctx, p)
		if prof != nil {
			if perr := prof(); perr != nil {
				res.Notes = append(res.Notes, e.side.name()+" profile: "+perr.Error())
			}
		}
		if err != nil {
			return err
		}
		r.Phases = append(r.Phases, res)
	}
	return nil
}

// probe makes sure every conversation of a plan takes sends (a natter group's membership may
// take a moment to reach the store): one send each, retried for up to 30 s.
func (e *peerEngine) probe(ctx context.Context, senders map[*peerConn]string) error {
	seen := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for c, conv := range senders {
		if seen[conv] {
			continue
		}
		seen[conv] = true
		g.Go(func() error {
			deadline := time.Now().Add(30 * time.Second)
			for {
				n, err := c.sendBatch(gctx, conv, 1, 1, 10*time.Second)
				if n == 1 {
					return nil
				}
				if time.Now().After(deadline) || gctx.Err() != nil {
					return fmt.Errorf("conversation %s still refuses sends after 30s: %v", conv, err)
				}
				sleep(gctx, 200*time.Millisecond)
			}
		})
	}
	return g.Wait()
}

// run executes one phase: warm up, measure for Duration, stop sending, settle.
func (e *peerEngine) run(ctx context.Context, p peerPlan) (*LoadResult, error) {
	cfg := e.cfg
	id := e.phase.Add(1)
	stats := make([]*clientStats, len(e.conns))
	for i, c := range e.conns {
		st := &clientStats{phase: id, errs: map[string]uint64{}}
		stats[i] = st
		c.mu.Lock()
		c.st, c.window = st, nil
		c.mu.Unlock()
	}
	sendCtx, cancelSends := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+cfg.Settle)
	defer cancelSends()
	stop := make(chan struct{})
	var senders sync.WaitGroup
	startSenders(sendCtx, p.senders, p.mode, p.rate, cfg.Window, e.text, id, stats, stop, &senders)
	res := &LoadResult{Name: p.name, Scenario: p.scenario, Mode: p.mode, TargetRate: p.rate, Conversations: len(p.senders) / max(1, p.members),
		Members: p.members, Devices: 1, Senders: len(p.senders), Connections: len(e.conns), MsgSize: cfg.MsgSize}
	if p.mode == ModeFlat {
		res.Window = cfg.Window
	}
	sleep(ctx, cfg.Warmup)
	meter := e.cpu()
	use0, useErr := meter.usage()
	lag0, lagKnown := e.side.searchLag(ctx)
	cont := startContention(meter)
	t0 := time.Now()
	e.measuring.Store(true)
	sleep(ctx, cfg.Duration)
	e.measuring.Store(false)
	elapsed := time.Since(t0)
	use1, useErr1 := meter.usage()
	lag1, _ := e.side.searchLag(ctx)
	res.OtherCores = cont.otherCores(elapsed)
	close(stop)
	senders.Wait()
	res.BacklogAtEnd = e.side.backlog(ctx)

	// Settle: every send answered, every delivery arrived, the server caught up; bounded, and
	// given up early when nothing moves for 5 s.
	perMsg := uint64(p.members)
	settleStart := time.Now()
	lastProgress := time.Now()
	var lastAcked, lastDelivered, lastBacklog uint64
	for {
		var outstanding int
		var acked, delivered uint64
		for i, c := range e.conns {
			c.mu.Lock()
			acked += stats[i].acked
			delivered += stats[i].delivered
			c.mu.Unlock()
			if c.alive() {
				outstanding += c.outstanding()
			}
		}
		backlog := e.side.backlog(ctx)
		if outstanding == 0 && delivered >= acked*perMsg && backlog == 0 {
			break
		}
		if acked != lastAcked || delivered != lastDelivered || backlog != lastBacklog {
			lastAcked, lastDelivered, lastBacklog, lastProgress = acked, delivered, backlog, time.Now()
		}
		if time.Since(settleStart) > cfg.Settle || time.Since(lastProgress) > 5*time.Second || ctx.Err() != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("did not settle in %.0fs: %d sends unanswered, %d of %d deliveries, backlog %d",
				time.Since(settleStart).Seconds(), outstanding, delivered, acked*perMsg, backlog))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.SettleSeconds = time.Since(settleStart).Seconds()

	var ack, deliver hist
	res.Errors = map[string]uint64{}
	other := map[string]uint64{}
	var mAcked, mDelivered, mRecipient uint64
	for i, c := range e.conns {
		st := stats[i]
		c.mu.Lock()
		c.st, c.window = nil, nil
		res.Sent += st.sent.Load()
		res.Late += st.late.Load()
		res.Acked += st.acked
		res.Delivered += st.delivered
		mAcked += st.mAcked
		mDelivered += st.mDelivered
		mRecipient += st.mRecipient
		ack.merge(&st.ack)
		deliver.merge(&st.deliver)
		for k, v := range st.errs {
			res.Errors[k] += v
		}
		for k, v := range c.other {
			other[k] += v
		}
		clear(c.other)
		if c.pending != nil {
			clear(c.pending)
		}
		c.mu.Unlock()
	}
	for k, v := range other {
		res.Notes = append(res.Notes, fmt.Sprintf("%d unexpected frames: %s", v, k))
	}
	secs := elapsed.Seconds()
	res.Seconds = secs
	res.AckedPerSec = float64(mAcked) / secs
	res.DeliveriesPerSec = float64(mDelivered) / secs
	res.DeliveredMsgsPerSec = float64(mRecipient) / float64(p.members-1) / secs
	res.AckLatency = ack.summary()
	res.DeliverLatency = deliver.summary()
	if exp := res.Acked * perMsg; res.Delivered < exp {
		res.Missing = exp - res.Delivered
	}
	if lagKnown && lag1 > lag0+searchBatch {
		// Search took in fewer events than were sent (it runs at the lowest CPU priority in
		// natter run): the work it put off is this phase's too, so the CPU is read again once
		// search is back to the backlog it had when the window opened. The wait's own idle CPU,
		// and the indexing of what was sent after the window, are counted with it: this errs
		// against natter. A growth within one batch is where the window's ends fell in search's
		// batching (it gathers a batch for up to a second), not work put off. A backlog that does
		// not fall at all is of a natter without search: nothing is added.
		switch back, fell := e.waitSearch(ctx, lag0, cfg.Settle); {
		case !fell:
			res.Notes = append(res.Notes, fmt.Sprintf("search fell %d events behind during the measurement and its backlog did not fall in %s after it: not counted (natter runs without search?)",
				lag1-lag0, searchStall))
		default:
			if use2, err := meter.usage(); err == nil {
				use1 = use2
			}
			res.Notes = append(res.Notes, fmt.Sprintf("search fell %d events behind during the measurement: CPU counted until it was back to its backlog at the start (%.1fs after the window, back: %v)",
				lag1-lag0, time.Since(t0).Seconds()-elapsed.Seconds(), back))
		}
	}
	if useErr == nil && useErr1 == nil {
		res.CPUSeconds = (use1.cpu - use0.cpu).Seconds()
		if mAcked > 0 {
			res.CPUPer1000Msgs = res.CPUSeconds / float64(mAcked) * 1000
		}
		if mDelivered > 0 {
			res.CPUPer1000Deliveries = res.CPUSeconds / float64(mDelivered) * 1000
		}
		res.Calls = use1.callsSince(use0)
	}
	held := 0
	var firstClose error
	for _, c := range e.conns {
		if c.alive() {
			held++
		} else if firstClose == nil {
			firstClose = c.closeErr
		}
	}
	res.ConnectionsHeld = held
	if held < len(e.conns) {
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections closed by the server (first: %v)", len(e.conns)-held, firstClose))
	}
	return res, nil
}

// searchBatch is search's largest batch: a growth of its backlog during a window up to this
// much is its batching, not deferred work.
var searchBatch = uint64(search.DefaultConfig().Chunk)

// waitSearch waits, at most limit, until the server's search backlog is down to target; it
// reports whether it got there, and whether the backlog fell at all. It gives up once the
// backlog has not fallen for searchStall: then nothing takes from search's consumer (natter runs
// without search, --target), and waiting would only count idle CPU.
func (e *peerEngine) waitSearch(ctx context.Context, target uint64, limit time.Duration) (back, fell bool) {
	deadline := time.Now().Add(limit)
	first, ok := e.side.searchLag(ctx)
	if !ok {
		return false, false
	}
	low, lowAt := first, time.Now()
	for lag := first; lag > target; {
		if time.Now().After(deadline) || time.Since(lowAt) > searchStall || ctx.Err() != nil {
			return false, low < first
		}
		time.Sleep(50 * time.Millisecond)
		if lag, ok = e.side.searchLag(ctx); !ok {
			return false, low < first
		}
		if lag < low {
			low, lowAt = lag, time.Now()
		}
	}
	return true, true
}

// searchStall is how long waitSearch waits for search's backlog to fall at all. Search gathers a
// batch for up to a second and indexes one in well under another.
const searchStall = 3 * time.Second

// waitQuiet waits, at most limit, until process pid has used less than a tenth of a core in
// two consecutive quarter seconds: the previous step's work (closing sockets, compactions) is
// not counted in the next one's.
func waitQuiet(ctx context.Context, pid int, limit time.Duration) {
	m := cpuMeter{pid: pid}
	prev, err := m.read()
	if err != nil {
		return
	}
	deadline := time.Now().Add(limit)
	for calm := 0; calm < 2 && time.Now().Before(deadline) && ctx.Err() == nil; {
		sleep(ctx, 250*time.Millisecond)
		cur, err := m.read()
		if err != nil {
			return
		}
		if cur-prev < 25*time.Millisecond {
			calm++
		} else {
			calm = 0
		}
		prev = cur
	}
}
