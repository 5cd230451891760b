package main

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/services/app"
)

// derived is what app.Config.Derived fills in, side by side for comparison.
type derived struct {
	PresenceTTL, Sweep, Announce, RouteRefresh, Liveness, APIEditWindow time.Duration
	FanoutBarrier, GatewayBarrier, APIBarrier                           time.Duration
	FanoutPartitions, GatewayPartitions                                 int
	MembershipConsumer                                                  string
}

func derivedOf(c app.Config) derived {
	d := c.Derived()
	return derived{
		PresenceTTL: d.Presence.GatewayTTL, Sweep: d.Presence.Sweep, Announce: d.Gateway.Announce,
		RouteRefresh: d.Gateway.RouteRefresh, Liveness: d.Fanout.Liveness, APIEditWindow: d.API.EditWindow,
		FanoutBarrier: d.Fanout.BarrierWindow, GatewayBarrier: d.Gateway.BarrierWindow, APIBarrier: d.API.BarrierWindow,
		FanoutPartitions: d.Fanout.Partitions, GatewayPartitions: d.Gateway.FanoutPartitions, MembershipConsumer: d.Gateway.MembershipConsumer,
	}
}

// The processes of a split deployment, given the same shared flags and each its own --target
// (and addresses), run with the same derived values as the all-in-one process, and those follow
// the flags.
func TestSplitProcessesDeriveTheSameConfig(t *testing.T) {
	shared := []string{"--gateway-ttl", "30s", "--fanout-partitions", "3", "--fanout-liveness", "2s", "--edit-window", "1m", "--barrier-window", "20ms"}
	want := derived{
		PresenceTTL: 30 * time.Second, Sweep: 10 * time.Second, Announce: 10 * time.Second,
		RouteRefresh: 4 * time.Minute, Liveness: 2 * time.Second, APIEditWindow: time.Minute,
		FanoutBarrier: 20 * time.Millisecond, GatewayBarrier: 20 * time.Millisecond, APIBarrier: 20 * time.Millisecond,
		FanoutPartitions: 3, GatewayPartitions: 3, MembershipConsumer: "fanout-0",
	}
	processes := [][]string{
		nil, // all-in-one
		{"--target", app.TargetNATS},
		{"--target", app.TargetGateway, "--ws-addr", "127.0.0.1:0", "--store", "remote", "--nats-url", "nats://127.0.0.1:4222"},
		{"--target", app.TargetAPI + "," + app.TargetStore},
		{"--target", app.TargetFanout, "--fanout-id", "f1"},
		{"--target", app.TargetPresence + "," + app.TargetPush},
		{"--target", app.TargetPersister + "," + app.TargetSearch},
	}
	for _, own := range processes {
		cfg, _, err := parseRun("run", append(append([]string{}, shared...), own...))
		if err != nil {
			t.Fatalf("%v: %v", own, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%v: %v", own, err)
		}
		if got := derivedOf(cfg); got != want {
			t.Errorf("process %v derives\n%+v\nwant\n%+v", own, got, want)
		}
	}
}

// --gateway-ttl still sets the gateway TTL, and without it every process has the default.
func TestGatewayTTLFlag(t *testing.T) {
	cfg, _, err := parseRun("run", []string{"--gateway-ttl", "45s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Streams.GatewayTTL != 45*time.Second {
		t.Fatalf("--gateway-ttl 45s: streams gateway ttl %s", cfg.Streams.GatewayTTL)
	}
	def, _, err := parseRun("run", nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Streams.GatewayTTL != app.DefaultConfig().Streams.GatewayTTL || derivedOf(def) != derivedOf(app.DefaultConfig()) {
		t.Fatalf("no flags: %+v, want the defaults %+v", derivedOf(def), derivedOf(app.DefaultConfig()))
	}
}
