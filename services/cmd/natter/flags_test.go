package main

import (
	"flag"
	"strings"
	"testing"
)

func TestEnvironmentSetsFlagsAndFlagsWin(t *testing.T) {
	t.Setenv("NATTER_DATA_DIR", "/from/env")
	t.Setenv("NATTER_NATS_PORT", "4333")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	dir := fs.String("data-dir", "./data", "")
	port := fs.Int("nats-port", 4222, "")
	api := fs.String("api-addr", "x", "")
	if err := envFlags(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--api-addr", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if *dir != "/from/env" || *port != 4333 || *api != "from-flag" {
		t.Fatalf("got %q %d %q", *dir, *port, *api)
	}
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Int("nats-port", 4222, "")
	t.Setenv("NATTER_NATS_PORT", "not-a-number")
	if err := envFlags(fs2); err == nil || !strings.Contains(err.Error(), "NATTER_NATS_PORT") {
		t.Fatalf("bad env value accepted: %v", err)
	}
}

func TestMigrateNeedsHosts(t *testing.T) {
	t.Setenv("NATTER_SCYLLA_HOSTS", "")
	if err := migrateCmd(nil); err == nil || !strings.Contains(err.Error(), "--scylla-hosts") {
		t.Fatalf("got %v", err)
	}
}

func TestSplitList(t *testing.T) {
	if got := splitList(" a, b ,,c"); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("got %q", got)
	}
}
