package app

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	cases := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"node only", func(c *Config) { c.Targets = []string{TargetNATS} }, ""},
		{"store server on pebble", func(c *Config) { c.Targets = []string{TargetStore, TargetAPI} }, ""},
		{"remote store", func(c *Config) {
			c.Targets, c.StoreKind, c.NATSURL = []string{TargetGateway}, "remote", "nats://x:4222"
		}, ""},
		{"unknown target", func(c *Config) { c.Targets = []string{"gateway", "mailer"} }, `unknown target "mailer"`},
		{"node with external nats", func(c *Config) { c.Targets, c.NATSURL = []string{TargetNATS}, "nats://x:4222" }, "cannot be combined"},
		{"serving a remote store", func(c *Config) { c.Targets, c.StoreKind = []string{TargetStore}, "remote" }, "serves a local store"},
		{"unknown store", func(c *Config) { c.StoreKind = "mysql" }, "want pebble, scylla or remote"},
		{"no fanout partitions", func(c *Config) { c.Streams.FanoutPartitions = 0 }, "fanout partitions"},
		{"a barrier per chunk", func(c *Config) { c.Streams.BarrierWindow = 0 }, ""},
		{"negative barrier window", func(c *Config) { c.Streams.BarrierWindow = -time.Millisecond }, "barrier window"},
		{"barrier window over a second", func(c *Config) { c.Streams.BarrierWindow = 2 * time.Second }, "barrier window"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
