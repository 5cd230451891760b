// Package bench is `natter bench`: it drives a natter (started in-process, or a running one) with
// simulated users over real WebSockets — 1:1 and group traffic, flat out or at a paced rate —
// and measures, in the same run on the same machine, the raw baselines natter is built on: a
// JetStream async publish of the same payloads and a bare coder/websocket echo server. Every
// figure is reported beside its baseline and as a ratio to it, as a table for people and as JSON
// for tracking over time. docs/performance.md keeps the latest figures.
//
// Nothing here is a test gate: the targets are printed as met or missed, never asserted.
package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Run performs one bench run. It stops early, with what it has, when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "bench: "+format+"\n", args...)
		}
	}
	if cfg.Users%2 == 1 {
		cfg.Users--
	}
	start := time.Now()
	rep := &Report{Tool: "natter bench", Command: cfg.Command, Version: cfg.Version, StartedAt: start.UTC(),
		Host: Host{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)},
		Settings: Settings{Users: cfg.Users, Devices: cfg.Devices, Window: cfg.Window, Rate: cfg.Rate, MsgSize: cfg.MsgSize,
			GroupSize: cfg.GroupSize, Groups: cfg.Groups, IdleConns: cfg.IdleConns, Duration: cfg.Duration.String(),
			Warmup: cfg.Warmup.String(), FrameRateLifted: cfg.APIURL == ""}}
	defer func() {
		rep.Seconds = time.Since(start).Seconds()
		rep.finish() // also after an error: the report holds what was measured
	}()
	rep.Target = "in-process natter (embedded NATS + Pebble in a temp dir)"
	if cfg.APIURL != "" {
		rep.Target = "external natter at " + cfg.APIURL
		if cfg.PID == 0 {
			rep.Notes = append(rep.Notes, "no --pid: natter's CPU time and memory are unknown")
		}
		if cfg.NATSURL == "" {
			rep.Notes = append(rep.Notes, "no --nats-url: phases do not wait for natter's persister and fanout to catch up, so a phase may start while the previous one's backlog drains")
		}
	}

	exe := cfg.SelfExe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find own executable for the idle clients: %w", err)
		}
	}
	text := strings.Repeat("x", cfg.MsgSize)
	sample := sampleFrame(text)
	payload, err := chatPayload(cfg.MsgSize, text)
	if err != nil {
		return nil, err
	}
	load := cfg.has(Scenario1to1) || cfg.has(ScenarioGroup)

	// An external natter is checked first, so that a wrong --url fails at once; an in-process
	// one starts after the baselines, which then have the process to themselves.
	var t *target
	stopTarget := func() {
		if t == nil {
			return
		}
		progress("stopping natter")
		if serr := t.stop(); serr != nil {
			log.Warn("stop natter", zap.Error(serr))
		}
		progress("natter stopped")
	}
	defer stopTarget()
	if cfg.APIURL != "" {
		if t, err = startTarget(ctx, cfg, log); err != nil {
			return rep, err
		}
	}

	// Raw baselines first, while nothing else runs in this process.
	if load {
		progress("baseline: JetStream async publish, %d publishers", cfg.Users)
		if rep.Baselines.JetStreamAsync, rep.Baselines.JetStreamPipeline, rep.Baselines.JetStreamSync, err = jsBaseline(ctx, cfg, cfg.Users, payload, log); err != nil {
			return rep, err
		}
		progress("baseline: coder/websocket echo, round trips and %d pipelined clients", cfg.Users)
		if rep.Baselines.WSEchoRTT, rep.Baselines.WSEchoPipelined, err = wsBaseline(ctx, cfg, cfg.Users, sample); err != nil {
			return rep, err
		}
	}
	if cfg.has(ScenarioMemory) {
		progress("baseline: %d idle connections to a coder/websocket echo server", cfg.IdleConns)
		echo, err := startEcho()
		if err != nil {
			return rep, err
		}
		rep.Baselines.WSEchoIdle, err = measureIdle(ctx, exe, "coder/websocket echo", idleJob{URL: echo.url(), N: cfg.IdleConns}, true, 0, "")
		echo.close()
		if err != nil {
			return rep, fmt.Errorf("echo idle connections: %w", err)
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	if t == nil {
		progress("starting natter")
		if t, err = startTarget(ctx, cfg, log); err != nil {
			return rep, err
		}
	}
	eng := newEngine(cfg, t, log)
	if load {
		progress("signing up %d users", cfg.Users)
		if err := eng.signup(ctx, cfg.Users); err != nil {
			return rep, err
		}
		progress("connecting %d users × %d devices", cfg.Users, cfg.Devices)
		if err := eng.connect(ctx); err != nil {
			eng.close()
			return rep, err
		}
		err := runLoad(ctx, cfg, eng, rep, progress)
		eng.close()
		if err != nil {
			return rep, err
		}
	}

	if cfg.has(ScenarioMemory) && ctx.Err() == nil {
		// Users of their own, in no conversation, so that nothing (presence of contacts, say)
		// is sent to these connections: idle means idle.
		idleUsers := max(1, min(20, cfg.IdleConns/100))
		progress("signing up %d users for the idle connections", idleUsers)
		tokens, err := eng.signupIdle(ctx, idleUsers)
		if err != nil {
			return rep, err
		}
		progress("%d idle connections to natter", cfg.IdleConns)
		job := idleJob{URL: t.wsURL, Tokens: tokens, DevicePfx: "idle", N: cfg.IdleConns, WaitSynced: true}
		rep.Memory, err = measureIdle(ctx, exe, "natter", job, t.inProcess, t.rssPID, cfg.MemProfile)
		if err != nil {
			return rep, fmt.Errorf("natter idle connections: %w", err)
		}
	}
	return rep, nil
}

// runLoad runs the 1:1 and group phases on connected users.
func runLoad(ctx context.Context, cfg Config, eng *engine, rep *Report, progress func(string, ...any)) error {
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	if cfg.Trace != "" {
		f, err := os.Create(cfg.Trace)
		if err != nil {
			return err
		}
		if err := trace.Start(f); err != nil {
			_ = f.Close()
			return err
		}
		defer func() {
			trace.Stop()
			_ = f.Close()
		}()
	}
	phases := func(p plan) error {
		if err := eng.probe(ctx, p.senders); err != nil {
			return fmt.Errorf("%s: %w", p.scenario, err)
		}
		var flat *LoadResult
		if cfg.mode(ModeFlat) {
			p.mode, p.name = ModeFlat, p.scenario+" flat-out"
			progress("%s: %d senders, window %d, %s", p.name, len(p.senders), cfg.Window, cfg.Duration)
			res, err := eng.run(ctx, p)
			if err != nil {
				return err
			}
			rep.Phases = append(rep.Phases, res)
			flat = res
		}
		if cfg.mode(ModePaced) && ctx.Err() == nil {
			rate := cfg.Rate
			if rate == 0 {
				if flat == nil {
					return errors.New("paced mode needs --rate, or a flat-out phase to derive it from")
				}
				rate = sustained(flat) / 2
			}
			if rate <= 0 {
				return fmt.Errorf("%s: no rate to pace at (flat-out moved nothing)", p.scenario)
			}
			p.mode, p.rate, p.name = ModePaced, rate, fmt.Sprintf("%s paced %.0f/s", p.scenario, rate)
			progress("%s: %d senders, %s", p.name, len(p.senders), cfg.Duration)
			res, err := eng.run(ctx, p)
			if err != nil {
				return err
			}
			rep.Phases = append(rep.Phases, res)
		}
		return nil
	}
	if cfg.has(Scenario1to1) {
		p, err := eng.oneToOnePlan(ctx)
		if err != nil {
			return err
		}
		if err := phases(p); err != nil {
			return err
		}
	}
	if cfg.has(ScenarioGroup) && ctx.Err() == nil {
		p, err := eng.groupPlan(ctx)
		switch {
		case errors.Is(err, errNoGroupAPI):
			rep.GroupSkipped = "group scenario skipped: no group API"
			progress("%s", rep.GroupSkipped)
		case err != nil:
			return err
		default:
			if err := phases(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// sampleFrame is a send frame of this run's size, for the echo baseline.
func sampleFrame(text string) []byte {
	c := &client{}
	c.prepare("d"+strings.Repeat("a", 25), text)
	f := append([]byte(nil), c.pre...)
	f = appendMsgID(f, msgID{phase: 3, conn: 0x1f, n: 0x1ff, sent: 1 << 40})
	return append(f, c.post...)
}

// sustained is the most messages/s a flat-out phase showed natter can keep up with: what was
// accepted, delivered to every device, and (when natter's metrics say) persisted, whichever is
// least. Beyond it a backlog grows without bound.
func sustained(p *LoadResult) float64 {
	r := p.AckedPerSec
	if perMsg := float64(p.Members * p.Devices); perMsg > 0 {
		r = min(r, p.DeliveriesPerSec/perMsg)
	}
	for _, s := range p.Stages {
		if strings.HasPrefix(s.Name, "persister") || strings.HasPrefix(s.Name, "fanout") {
			r = min(r, s.PerSec)
		}
	}
	return r
}
