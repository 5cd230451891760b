package app

import "github.com/natter-chat/natter/streams"

// Derived returns c with every setting that follows from another filled in from it. New runs it,
// so the all-in-one process and each split --target derive the same values from the operator's
// settings; a derived field set by hand is overwritten. What follows from what:
//
//   - Streams.GatewayTTL (--gateway-ttl): Presence.GatewayTTL, the same; Gateway.Announce and
//     Presence.Sweep, streams.Options.GatewayRefresh (a third of it).
//   - Streams.RouteTTL: Gateway.RouteRefresh, streams.Options.RouteRefresh (two fifths of it).
//   - Streams.FanoutPartitions (--fanout-partitions): Fanout.Partitions and
//     Gateway.FanoutPartitions, the same; Gateway.MembershipConsumer, the consumer of partition 0.
//   - Streams.FanoutLiveness (--fanout-liveness): Fanout.Liveness, the same.
//   - Streams.BarrierWindow (--barrier-window): Fanout.BarrierWindow, Gateway.BarrierWindow and
//     API.BarrierWindow, the same (fanout's barrier serves that long; writers wait as long).
//   - Gateway.EditWindow (--edit-window): API.EditWindow, the same (one rule for the edit frame
//     and PATCH).
//   - StoreKind (--store) and Targets: Persister.Sole, for the embedded store ("pebble") when
//     this process does not serve it to others (TargetStore): one process writes it, so its
//     persister is the only puller of the persister consumer (which then acks all). A process
//     that serves it may have persisters of other processes (--store remote) beside its own.
func (c Config) Derived() Config {
	o := c.Streams
	c.Presence.GatewayTTL = o.GatewayTTL
	c.Gateway.Announce, c.Presence.Sweep = o.GatewayRefresh(), o.GatewayRefresh()
	c.Gateway.RouteRefresh = o.RouteRefresh()
	c.Fanout.Partitions, c.Gateway.FanoutPartitions = o.FanoutPartitions, o.FanoutPartitions
	c.Gateway.MembershipConsumer = streams.FanoutConsumerName(0, o.FanoutPartitions)
	c.Fanout.Liveness = o.FanoutLiveness
	c.Fanout.BarrierWindow, c.Gateway.BarrierWindow, c.API.BarrierWindow = o.BarrierWindow, o.BarrierWindow, o.BarrierWindow
	c.API.EditWindow = c.Gateway.EditWindow
	c.Persister.Sole = c.StoreKind == "pebble" && !c.has(TargetStore)
	return c
}
