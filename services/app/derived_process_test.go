package app_test

import (
	"testing"
	"time"

	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// A process runs with the derived values: New derives them from the operator's settings and
// overwrites what was set by hand.
func TestProcessRunsWithDerivedConfig(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) {
		c.Streams.GatewayTTL, c.Streams.FanoutPartitions = 30*time.Second, 2
		c.Presence.GatewayTTL, c.Gateway.Announce = time.Hour, time.Hour // derived: overwritten
	})
	got := s.Run.Config
	if got.Presence.GatewayTTL != 30*time.Second || got.Presence.Sweep != 10*time.Second || got.Gateway.Announce != 10*time.Second {
		t.Errorf("gateway ttl 30s: presence ttl %s, sweep %s, announce %s; want 30s, 10s, 10s",
			got.Presence.GatewayTTL, got.Presence.Sweep, got.Gateway.Announce)
	}
	if got.Fanout.Partitions != 2 || got.Gateway.FanoutPartitions != 2 || got.Gateway.MembershipConsumer != "fanout-0" {
		t.Errorf("2 partitions: fanout %d, gateway %d, membership consumer %q", got.Fanout.Partitions, got.Gateway.FanoutPartitions, got.Gateway.MembershipConsumer)
	}
}
