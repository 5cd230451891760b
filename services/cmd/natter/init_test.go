package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsperm"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/streams"
)

// natter init applies the definitions natter run's flags describe to an external NATS, then
// exits; natter nats-users prints the users for the same flags.
func TestInitAppliesTheDefinitionsOfTheFlags(t *testing.T) {
	srv, err := natsx.StartServer(natsx.ServerConfig{Dir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if _, stderr, code := natter(t, "init", "--nats-url", srv.ClientURL(), "--fanout-partitions", "3"); code != 0 {
		t.Fatalf("natter init: exit %d\n%s", code, stderr)
	}
	nc, err := natsx.Connect("", "check", srv, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{streams.PersisterConsumer, streams.FanoutConsumerName(2, 3)} {
		if _, err := js.Consumer(ctx, streams.ChatStream, name); err != nil {
			t.Errorf("consumer %s after natter init: %v", name, err)
		}
	}
	if _, stderr, code := natter(t, "init"); code == 0 || !strings.Contains(stderr, "--nats-url") {
		t.Errorf("natter init without --nats-url: exit %d, %q", code, stderr)
	}

	stdout, stderr, code := natter(t, "nats-users", "--fanout-partitions", "3")
	want, err := natsperm.Config(natsperm.DeployUsers(), func() streams.Options { o := streams.DefaultOptions(); o.FanoutPartitions = 3; return o }())
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || stdout != want {
		t.Fatalf("natter nats-users: exit %d %s\n%s", code, stderr, stdout)
	}
}
