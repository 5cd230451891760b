package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/natter-chat/natter/services/bench"
)

func benchCmd(args []string) error {
	bench.RunChildIfAsked() // the idle-connection clients of the memory scenario are this binary too
	if len(args) > 0 && args[0] == "peers" {
		return benchPeersCmd(args[1:]) // natter against Centrifugo: bench_peers.go
	}

	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `natter bench — load natter over real WebSockets and compare it with raw baselines

Usage: natter bench [flags]
       natter bench peers [flags]   natter against Centrifugo v6 (natter bench peers -h)

Without --url it starts natter in-process (embedded NATS and Pebble in a temporary directory,
per-connection frame rate limit lifted). It measures, in the same run, a JetStream async publish
of the same payloads and a bare coder/websocket echo server, and reports every figure as a ratio
to its baseline. All traffic stays on 127.0.0.1 (or the --url you give).

Flags:
`)
		fs.PrintDefaults()
	}
	scenarios := fs.String("scenario", strings.Join(bench.AllScenarios, ","), "scenarios to run: any of "+strings.Join(bench.AllScenarios, ",")+", or all")
	modes := fs.String("mode", "flat,paced", "load modes: flat (every sender keeps --window sends outstanding), paced (--rate msgs/s in total)")
	fs.StringVar(&cfg.APIURL, "url", "", "HTTP API of a running natter (e.g. http://127.0.0.1:8080); empty starts one in-process")
	fs.StringVar(&cfg.WSURL, "ws-url", "", "WebSocket endpoint of the running natter (default: ask its /v1/discovery)")
	fs.IntVar(&cfg.PID, "pid", 0, "process id of the running natter, for its CPU time and RSS")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "NATS of the running natter, to wait for its consumers between phases (e.g. nats://127.0.0.1:4222)")
	fs.StringVar(&cfg.MetricsURL, "metrics-url", "", "Prometheus endpoint of the running natter, for its stage timings (e.g. http://127.0.0.1:9090/metrics)")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "simulated users (1:1 pairs them; the group scenario uses the first group-size × groups)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "connections per user (device 0 sends; every device receives)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "outstanding sends per sender in flat-out mode (and per baseline client)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "paced mode: messages/s in total; 0 = half the sustained flat-out rate just measured")
	fs.IntVar(&cfg.MsgSize, "msg-size", cfg.MsgSize, "characters of text per message")
	fs.IntVar(&cfg.GroupSize, "group-size", cfg.GroupSize, "members per group (2..100)")
	fs.IntVar(&cfg.Groups, "groups", cfg.Groups, "groups in the group scenario")
	fs.IntVar(&cfg.IdleConns, "conns", cfg.IdleConns, "idle connections held in the memory scenario (the clients run in a child process; mind the open-file limit)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time of each phase")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured time before each phase")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "longest wait after a phase for outstanding acks and deliveries")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the load phases here (clients carry the label bench=client)")
	fs.StringVar(&cfg.Trace, "trace", "", "write a runtime execution trace of the load phases here (keep --duration short)")
	fs.StringVar(&cfg.MemProfile, "memprofile", "", "write a heap profile here while the idle connections are held")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	jsonOut := fs.String("json-out", "", "also write the JSON report to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	logLevel := fs.String("log-level", "error", "log level of the in-process natter (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if *scenarios != "all" {
		cfg.Scenarios = strings.Split(*scenarios, ",")
	}
	cfg.Modes = strings.Split(*modes, ",")
	cfg.Command = strings.TrimSpace("natter bench " + strings.Join(args, " "))
	cfg.Version = version
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	log, err := newLogger(logOptions{Level: *logLevel, Format: "console"}, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg.Log = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, runErr := bench.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	return errors.Join(runErr, writeReport(rep, *jsonOut, *asJSON))
}

// report is what natter bench and natter bench peers print.
type report interface {
	WriteJSON(w io.Writer) error
	WriteTable(w io.Writer) error
}

// writeReport saves rep as JSON to jsonOut (unless empty) and prints it on stdout, as JSON or as
// a table.
func writeReport(rep report, jsonOut string, asJSON bool) error {
	if jsonOut != "" {
		f, err := os.Create(jsonOut)
		if err != nil {
			return err
		}
		if err := rep.WriteJSON(f); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if asJSON {
		return rep.WriteJSON(os.Stdout)
	}
	return rep.WriteTable(os.Stdout)
}
