package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/natter-chat/natter/services/bench"
)

// benchPeersCmd is `natter bench peers`: natter against Centrifugo, alternating rounds.
func benchPeersCmd(args []string) error {
	cfg := bench.DefaultPeersConfig()
	fs := flag.NewFlagSet("bench peers", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `natter bench peers — natter against Centrifugo v6, same load, same machine

Usage: natter bench peers [flags]

Starts natter (`+"`natter run`"+`, its own data directory in a temporary folder) and Centrifugo
(memory engine, HMAC JWT, history and recovery on) as processes of their own, fresh for every
round, and alternates rounds: natter, Centrifugo, natter, ... Each round runs 1:1 flat-out, 1:1
paced, a group, idle connections and a catch-up, and the report gives every figure's median over
rounds with its spread and the ratio natter / Centrifugo. Each --natter-variant is natter run
with more arguments, a server of its own after natter in every round pair, with columns of its
own: what natter costs without some of its parts, in the same run. make bench-peers builds both
binaries (Centrifugo from the Go module proxy, outside natter's modules) and runs this.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.NatterBin, "natter", cfg.NatterBin, "natter binary (run as: natter run)")
	natterArgs := fs.String("natter-args", "", "more arguments to `natter run`, space-separated (e.g. \"--target gateway,api,persister,fanout,presence,push\")")
	fs.Func("natter-variant", "NAME=ARGS: also run `natter run` with these arguments (after --natter-args) in every round pair, its figures and ratios in columns of their own; repeatable (e.g. \"no-search=--target gateway,api,persister,fanout,presence,push\")", func(s string) error {
		v, err := bench.ParseNatterVariant(s)
		if err == nil {
			cfg.Variants = append(cfg.Variants, v)
		}
		return err
	})
	fs.StringVar(&cfg.CentrifugoBin, "centrifugo", cfg.CentrifugoBin, "Centrifugo v6 binary")
	fs.IntVar(&cfg.Pairs, "pairs", cfg.Pairs, "round pairs (natter, Centrifugo), alternating")
	scenarios := fs.String("scenario", strings.Join(bench.AllPeerScenarios, ","), "scenarios: any of "+strings.Join(bench.AllPeerScenarios, ","))
	servers := fs.String("servers", bench.ServerNatter+","+bench.ServerCentrifugo, "servers to run: natter, centrifugo or both")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "users in the 1:1 scenarios, in pairs (even)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "outstanding sends per sender, flat out")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "paced 1:1: messages/s in total")
	fs.IntVar(&cfg.MsgSize, "msg-size", cfg.MsgSize, "characters of text per message")
	fs.IntVar(&cfg.GroupSize, "group-size", cfg.GroupSize, "members of the group (the first users)")
	fs.IntVar(&cfg.IdleConns, "conns", cfg.IdleConns, "idle connections (held by a child process)")
	fs.IntVar(&cfg.CatchUp, "catch-up", cfg.CatchUp, "messages a device misses before it reconnects")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time of each load phase")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured time before each load phase")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "longest wait after a phase for outstanding acks and deliveries")
	fs.StringVar(&cfg.CentrifugoProfile, "centrifugo-cpuprofile", "", "write a CPU profile of Centrifugo (its pprof endpoint) over the first Centrifugo round's --profile-phase here")
	fs.StringVar(&cfg.NatterProfile, "natter-cpuprofile", "", "write a CPU profile of natter (run with --pprof) over the first natter round's --profile-phase here, and print its CPU by part after the report")
	fs.StringVar(&cfg.ProfilePhase, "profile-phase", bench.PeerFlat, "the phase --centrifugo-cpuprofile and --natter-cpuprofile cover: "+bench.PeerFlat+", "+bench.PeerPaced+" or "+bench.PeerGroup)
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	jsonOut := fs.String("json-out", "", "also write the JSON report to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench peers: unexpected arguments %q", fs.Args())
	}
	cfg.Scenarios = strings.Split(*scenarios, ",")
	cfg.Servers = strings.Split(*servers, ",")
	cfg.NatterArgs = strings.Fields(*natterArgs)
	cfg.Command = strings.TrimSpace("natter bench peers " + strings.Join(args, " "))
	cfg.Version = version
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, runErr := bench.RunPeers(ctx, cfg)
	if rep == nil {
		return runErr
	}
	err := errors.Join(runErr, writeReport(rep, *jsonOut, *asJSON))
	if cfg.NatterProfile != "" && !*asJSON {
		err = errors.Join(err, printParts(cfg.NatterProfile))
	}
	return err
}

// printParts prints where natter's CPU went in the profile at path, by part (bench.NatterParts).
func printParts(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("natter's profile: %w", err)
	}
	shares, total, err := bench.SortProfile(data, bench.NatterParts)
	if err != nil {
		return fmt.Errorf("natter's profile %s: %w", path, err)
	}
	fmt.Printf("\nnatter's CPU by part (%s, natter's own process: %.2f s of samples)\n\n", path, total.Seconds())
	bench.FormatParts(os.Stdout, shares, total)
	return nil
}
