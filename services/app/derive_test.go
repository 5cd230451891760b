package app

import (
	"testing"
	"time"
)

// derivedField is one setting that Derived fills in, read from a Config.
type derivedField struct {
	name string
	get  func(Config) any
}

// Each operator setting and every field derived from it: changing the setting alone changes each
// of them, to the value the rule gives, and leaves the fields derived from other settings alone.
func TestDerivedFollowsEachSetting(t *testing.T) {
	settings := []struct {
		name    string
		set     func(*Config)
		derived map[string]any // field -> the value it must take
	}{
		{"gateway ttl", func(c *Config) { c.Streams.GatewayTTL = 30 * time.Second }, map[string]any{
			"Presence.GatewayTTL": 30 * time.Second, "Presence.Sweep": 10 * time.Second, "Gateway.Announce": 10 * time.Second,
		}},
		{"route ttl", func(c *Config) { c.Streams.RouteTTL = 5 * time.Minute }, map[string]any{
			"Gateway.RouteRefresh": 2 * time.Minute,
		}},
		{"fanout partitions", func(c *Config) { c.Streams.FanoutPartitions = 3 }, map[string]any{
			"Fanout.Partitions": 3, "Gateway.FanoutPartitions": 3, "Gateway.MembershipConsumer": "fanout-0",
		}},
		{"fanout liveness", func(c *Config) { c.Streams.FanoutLiveness = 4 * time.Second }, map[string]any{
			"Fanout.Liveness": 4 * time.Second,
		}},
		{"barrier window", func(c *Config) { c.Streams.BarrierWindow = 20 * time.Millisecond }, map[string]any{
			"Fanout.BarrierWindow": 20 * time.Millisecond, "Gateway.BarrierWindow": 20 * time.Millisecond,
			"API.BarrierWindow": 20 * time.Millisecond,
		}},
		{"edit window", func(c *Config) { c.Gateway.EditWindow = time.Minute }, map[string]any{
			"API.EditWindow": time.Minute,
		}},
		{"store", func(c *Config) { c.StoreKind = "remote" }, map[string]any{
			"Persister.Sole": false,
		}},
		{"serving the store", func(c *Config) { c.Targets = append(c.Targets, TargetStore) }, map[string]any{
			"Persister.Sole": false,
		}},
	}
	fields := derivedFields()
	base := DefaultConfig().Derived()
	for _, s := range settings {
		c := DefaultConfig()
		s.set(&c)
		got := c.Derived()
		for _, f := range fields {
			before, after := f.get(base), f.get(got)
			want, follows := s.derived[f.name]
			switch {
			case follows && after != want:
				t.Errorf("%s changed: %s = %v, want %v", s.name, f.name, after, want)
			case follows && after == before:
				t.Errorf("%s changed: %s stayed %v", s.name, f.name, after)
			case !follows && after != before:
				t.Errorf("%s changed: %s, which does not follow from it, changed from %v to %v", s.name, f.name, before, after)
			}
		}
		for name := range s.derived {
			if !hasField(fields, name) {
				t.Errorf("%s: %s is not among the derived fields", s.name, name)
			}
		}
	}
}

// The defaults of the components agree with what Derived makes of the default streams options, so
// a test that builds one component from its DefaultConfig sees what a natter process runs with.
func TestDefaultsAreDerived(t *testing.T) {
	c := DefaultConfig()
	d := c.Derived()
	for _, f := range derivedFields() {
		if got, want := f.get(c), f.get(d); got != want {
			t.Errorf("default %s = %v, derived %v", f.name, got, want)
		}
	}
}

// A derived field set by hand does not survive: a process cannot run with a presence TTL other
// than the gateways bucket's.
func TestDerivedOverridesHandSetFields(t *testing.T) {
	c := DefaultConfig()
	c.Presence.GatewayTTL, c.Gateway.Announce, c.Fanout.Partitions = time.Hour, time.Hour, 7
	d := c.Derived()
	if d.Presence.GatewayTTL != c.Streams.GatewayTTL || d.Gateway.Announce != c.Streams.GatewayRefresh() || d.Fanout.Partitions != c.Streams.FanoutPartitions {
		t.Fatalf("hand-set fields kept: presence ttl %s, announce %s, partitions %d", d.Presence.GatewayTTL, d.Gateway.Announce, d.Fanout.Partitions)
	}
}

func derivedFields() []derivedField {
	return []derivedField{
		{"Presence.GatewayTTL", func(c Config) any { return c.Presence.GatewayTTL }},
		{"Presence.Sweep", func(c Config) any { return c.Presence.Sweep }},
		{"Gateway.Announce", func(c Config) any { return c.Gateway.Announce }},
		{"Gateway.RouteRefresh", func(c Config) any { return c.Gateway.RouteRefresh }},
		{"Fanout.Partitions", func(c Config) any { return c.Fanout.Partitions }},
		{"Gateway.FanoutPartitions", func(c Config) any { return c.Gateway.FanoutPartitions }},
		{"Gateway.MembershipConsumer", func(c Config) any { return c.Gateway.MembershipConsumer }},
		{"Fanout.Liveness", func(c Config) any { return c.Fanout.Liveness }},
		{"API.EditWindow", func(c Config) any { return c.API.EditWindow }},
		{"Fanout.BarrierWindow", func(c Config) any { return c.Fanout.BarrierWindow }},
		{"Gateway.BarrierWindow", func(c Config) any { return c.Gateway.BarrierWindow }},
		{"API.BarrierWindow", func(c Config) any { return c.API.BarrierWindow }},
		{"Persister.Sole", func(c Config) any { return c.Persister.Sole }},
	}
}

func hasField(fields []derivedField, name string) bool {
	for _, f := range fields {
		if f.name == name {
			return true
		}
	}
	return false
}
