package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/store/scylla"
)

var scyllaHosts = new(string)

// scyllaFlags registers the ScyllaDB connection flags shared by run and migrate.
func scyllaFlags(fs *flag.FlagSet, c *scylla.Config) {
	fs.StringVar(scyllaHosts, "scylla-hosts", "", "ScyllaDB contact points, host[:port],... (with --store scylla)")
	fs.StringVar(&c.Keyspace, "scylla-keyspace", "natter", "ScyllaDB keyspace")
	fs.StringVar(&c.LocalDC, "scylla-local-dc", "", "datacenter of this process (token-aware, DC-aware routing)")
	fs.StringVar(&c.Consistency, "scylla-consistency", "LOCAL_QUORUM", "consistency of reads and writes")
	fs.DurationVar(&c.Timeout, "scylla-timeout", 6*time.Second, "timeout of one request")
	fs.IntVar(&c.NumRetries, "scylla-retries", 3, "retries of a failed request (-1 for none)")
	fs.StringVar(&c.Username, "scylla-username", "", "ScyllaDB user (PasswordAuthenticator)")
	fs.StringVar(&c.Password, "scylla-password", "", "ScyllaDB password")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// migrateCmd applies the versioned CQL migrations to ScyllaDB; running it again applies nothing.
func migrateCmd(args []string) error {
	var cfg scylla.Config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	scyllaFlags(fs, &cfg)
	rf := fs.Int("replication-factor", 3, "replication factor of the keyspace when it is created")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Hosts = splitList(*scyllaHosts)
	if len(cfg.Hosts) == 0 {
		return fmt.Errorf("migrate: --scylla-hosts (or NATTER_SCYLLA_HOSTS) is required")
	}
	log, err := newLogger(logOptions{Level: *logLevel, Format: "console"}, os.Stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	applied, err := scylla.Migrate(ctx, cfg, *rf, log)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(applied) == 0 {
		fmt.Println("schema is up to date; nothing applied")
	}
	for _, v := range applied {
		fmt.Println("applied", v)
	}
	return nil
}
