package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/streams"
)

// initCmd is natter init: apply the stream, bucket and consumer definitions to an external NATS
// and exit. It takes natter run's flags, so that the definitions are the ones natter run would
// apply; in a deployment with least-privilege NATS users it runs with the admin user, and every
// natter run with --apply-definitions=false.
func initCmd(args []string) error {
	cfg, opts, err := parseRun("init", args)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return fmt.Errorf("init: --nats-url is required (natter run applies the definitions of its embedded server itself)")
	}
	log, err := newLogger(*opts.log, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	natsOpts, err := cfg.NATSClient.Options()
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	nc, err := natsx.Connect(cfg.NATSURL, "natter:init", nil, log, natsOpts...)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("init: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ { // a forming cluster answers with errors for a while
		err = natsx.Apply(ctx, js, streams.Define(cfg.Streams))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("init: %w", err)
		}
		if attempt%10 == 1 {
			log.Warn("stream definitions not applied yet; retrying", zap.Int("attempt", attempt), zap.Error(err))
		}
		time.Sleep(500 * time.Millisecond)
	}
	log.Info("definitions applied", zap.Int("replicas", cfg.Streams.Replicas), zap.Int("fanout_partitions", cfg.Streams.FanoutPartitions))
	return nil
}
