// Command auditlog appends every message and membership change of a running natter's CHAT
// stream to a file, one JSON line each (see package auditlog). Ctrl-C stops it; started again, it
// goes on where it stopped.
//
//	go run ./examples/auditlog/cmd/auditlog --nats-url nats://127.0.0.1:4222 --out audit.jsonl
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/examples/auditlog"
)

func main() {
	url := flag.String("nats-url", nats.DefaultURL, "NATS of the natter deployment")
	out := flag.String("out", "audit.jsonl", "the audit log file")
	name := flag.String("consumer", "auditlog", "durable consumer name on CHAT")
	flag.Parse()
	if err := run(*url, *out, *name); err != nil {
		fmt.Fprintln(os.Stderr, "auditlog:", err)
		os.Exit(1)
	}
}

func run(url, out, name string) error {
	zl, err := zap.NewProduction()
	if err != nil {
		return err
	}
	defer func() { _ = zl.Sync() }()
	nc, err := nats.Connect(url, nats.Name("auditlog"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	log, err := auditlog.Open(out)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	zl.Info("auditing CHAT", zap.String("file", out), zap.Uint64("after_seq", log.Last()))
	return auditlog.Run(ctx, js, name, log, zl)
}
