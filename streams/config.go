package streams

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options are the deployment choices behind the definitions. The zero value is not valid; start
// from DefaultOptions.
type Options struct {
	// Replicas for every stream and bucket: 1 on one machine, 3 (or 5) on a cluster.
	Replicas int
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values. A retry marked resend
	// is recognised after it too (the gateway looks in the store and in the stream above the
	// persister's ack floor), so it only has to span an attempt still on its way to the stream
	// when its retry comes. JetStream keeps every id of the window on its heap (about 230 bytes
	// each), which the collector scans: 2 min at 3,800 sends/s was 74 MB of natter's 123 MB.
	DuplicateWindow time.Duration
	// ChatMaxAge bounds how long CHAT keeps events (0 = forever). It must exceed the longest lag
	// the persister is allowed: sync reads (persister ack floor, head] from the stream.
	ChatMaxAge time.Duration
	// ChatMaxBytes bounds CHAT's size (-1 = unlimited).
	ChatMaxBytes int64
	// RouteTTL is how long a route lives without its gateway refreshing it.
	RouteTTL time.Duration
	// GatewayTTL is how long a gateway stays discoverable without a heartbeat.
	GatewayTTL time.Duration
	// FanoutLiveness is how long a fanout instance counts as live after its last refresh of the
	// fanouts bucket (the bucket's TTL); the others take its partitions over after that.
	FanoutLiveness time.Duration
	// StateMaxAge bounds how long STATE keeps events (0 = forever, the default). Rebuilding the
	// store from the streams alone needs every state event; a finite age needs a store backup
	// younger than it.
	StateMaxAge time.Duration
	// PresenceMaxAge bounds the PRESENCE stream (0 = forever).
	PresenceMaxAge time.Duration
	// PushDeadMaxAge bounds PUSH_DEAD (0 = forever).
	PushDeadMaxAge time.Duration
	// AckWait is the redelivery timeout of natter's durable consumers.
	AckWait time.Duration
	// FanoutPartitions splits fanout's work by gateway: partition p delivers to the gateways with
	// FanoutPartition(gateway, n) == p, so every gateway still receives one global order. Each
	// partition is one durable consumer with a pinned-client priority group: one fanout instance
	// at a time is active on it. Every process of a deployment must agree on it.
	FanoutPartitions int
	// FanoutAckWait is fanout's redelivery timeout: a dead instance's unacknowledged events come
	// back after it (the partition that gets them has its gateways resync first; see fanout).
	FanoutAckWait time.Duration
	// MaxDeliver bounds deliveries of one event to natter's own durable consumers; -1 (the
	// default) never gives up, because an abandoned event would leave a gap behind the persister's
	// ack floor. Events that can never be handled are terminated explicitly instead.
	MaxDeliver int
	// BarrierWindow is how long one of fanout's route and consent barriers serves, and how long
	// gateways and the API wait after a route or consent write before relying on it (Settle).
	// Every process of a deployment must agree on it.
	BarrierWindow time.Duration
}

// DefaultOptions suit one machine.
func DefaultOptions() Options {
	return Options{
		Replicas:         1,
		DuplicateWindow:  15 * time.Second,
		ChatMaxAge:       7 * 24 * time.Hour,
		ChatMaxBytes:     -1,
		RouteTTL:         10 * time.Minute,
		GatewayTTL:       15 * time.Second,
		FanoutLiveness:   time.Second,
		PresenceMaxAge:   time.Hour,
		PushDeadMaxAge:   PushDeadMaxAge,
		AckWait:          30 * time.Second,
		FanoutPartitions: 1,
		FanoutAckWait:    5 * time.Second,
		MaxDeliver:       -1,
		BarrierWindow:    DefaultBarrierWindow,
	}
}

// FanoutMaxAckPending bounds fanout's unacknowledged events: four chunks of 512. Fanout's
// throughput under load is its per-chunk round trips times the chunks in flight (at two chunks
// of 256 it routed ~3.1k events/s while 14% busy); order across a crash does not depend on this
// bound (a partition detects gaps and has its gateways resync).
const FanoutMaxAckPending = 2048

// FanoutGroup is the priority group fanout instances pull with.
const FanoutGroup = "fanout"

// FanoutPinnedTTL is how long a fanout partition stays pinned to an instance that stopped
// pulling when nobody unpins it. Instances unpin what they hand over and what a dead instance
// held as soon as they take it (fanout's balance.go), so this is only the fallback.
func (o Options) FanoutPinnedTTL() time.Duration { return o.FanoutAckWait + 3*time.Second }

// GatewayRefresh is how often a gateway refreshes its entry in the gateways bucket, and how often
// presence sweeps out the devices of gateways whose entry went stale: a third of GatewayTTL, so an
// entry outlives two lost refreshes and a dead gateway's users go offline within 4/3 GatewayTTL.
func (o Options) GatewayRefresh() time.Duration { return o.GatewayTTL / 3 }

// RouteRefresh is how often a gateway puts its routes again to restart their TTL: two fifths of
// RouteTTL, so a route outlives one failed refresh.
func (o Options) RouteRefresh() time.Duration { return o.RouteTTL * 2 / 5 }

// durable is one of natter's own durable consumers (all but fanout's): explicit acks (search
// changes that), redelivery after AckWait, never given up (MaxDeliver), up to 10,000 in flight.
func (o Options) durable(name, description, filter string, deliver jetstream.DeliverPolicy) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: name, Description: description, FilterSubject: filter,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: o.AckWait, MaxDeliver: o.MaxDeliver,
		MaxAckPending: 10000, DeliverPolicy: deliver, Replicas: o.Replicas,
	}
}

// searchDurable is search's consumer. Deliver all: the index is built from every event CHAT
// still holds. Ack all: search is its only puller and indexes in stream order, so one ack
// settles a whole batch (the puller resets the consumer to its ack floor when it starts, so that
// nothing a crashed run held is acknowledged unindexed).
func (o Options) searchDurable() jetstream.ConsumerConfig {
	c := o.durable(SearchConsumer, "indexes message text for search", ChatAll, jetstream.DeliverAllPolicy)
	c.AckPolicy = jetstream.AckAllPolicy
	return c
}

// Definitions is every stream, bucket and durable consumer natter needs, declared once.
type Definitions struct {
	Streams   []jetstream.StreamConfig
	Buckets   []jetstream.KeyValueConfig
	Consumers map[string][]jetstream.ConsumerConfig // stream name -> durable consumers
	// PullerSets names consumers (stream name -> durables) whose ack policy their puller sets
	// when it starts: they are made with the declared one, and an existing one's is left as it is.
	PullerSets map[string][]string
}

// SetByPuller reports whether the puller of the durable on stream sets its ack policy.
func (d Definitions) SetByPuller(stream, durable string) bool {
	return slices.Contains(d.PullerSets[stream], durable)
}

// Define returns the definitions for the given options.
func Define(o Options) Definitions {
	d := Definitions{
		Streams: []jetstream.StreamConfig{
			{
				Name:        ChatStream,
				Description: "natter conversation events: chat.<conversation>.<kind>",
				Subjects:    []string{ChatAll},
				Retention:   jetstream.LimitsPolicy,
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
				MaxAge:      o.ChatMaxAge,
				MaxBytes:    o.ChatMaxBytes,
				Duplicates:  o.DuplicateWindow,
				Discard:     jetstream.DiscardOld,
				// A direct get may be answered by a follower that has not applied the newest
				// events yet; sync must never read a stale head or miss a tail event, so a
				// replicated CHAT is read through its leader.
				AllowDirect: o.Replicas == 1,
			},
			{
				Name:        StateStream,
				Description: "natter accounts, direct conversations, devices and push tokens: state.<kind>.<id>",
				Subjects:    []string{StateAll},
				Retention:   jetstream.LimitsPolicy,
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
				MaxAge:      o.StateMaxAge,
				Duplicates:  o.DuplicateWindow,
				Discard:     jetstream.DiscardOld,
				// Handles are claimed with expected-last-subject-sequence, which the leader checks;
				// reads of the last event of a subject go to the leader too when replicated.
				AllowDirect: o.Replicas == 1,
			},
			consentStream(o),
			{
				Name:        PresenceStream,
				Description: "natter device connect/disconnect: presence.<user>.<device>",
				Subjects:    []string{"presence.>"},
				Retention:   jetstream.LimitsPolicy,
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
				MaxAge:      o.PresenceMaxAge,
				AllowDirect: true,
			},
			{
				Name:        PushStream,
				Description: "natter push requests for users with no connected device: push.<user>",
				Subjects:    []string{"push.>"},
				Retention:   jetstream.WorkQueuePolicy,
				Storage:     jetstream.FileStorage,
				Replicas:    o.Replicas,
			},
		},
		Buckets: []jetstream.KeyValueConfig{
			{Bucket: RoutesBucket, Description: "<user>.<device> -> gateway holding its socket", TTL: o.RouteTTL, Replicas: o.Replicas, History: 1, Storage: jetstream.FileStorage},
			{Bucket: PresenceBucket, Description: "<user> -> presence status and last seen", Replicas: o.Replicas, History: 1, Storage: jetstream.FileStorage},
			{Bucket: GatewaysBucket, Description: "<gateway> -> address and load of a live gateway", TTL: o.GatewayTTL, Replicas: o.Replicas, History: 1, Storage: jetstream.FileStorage},
			{Bucket: FanoutsBucket, Description: "<fanout instance> -> alive; fanout partitions are shared out among the live ones", TTL: o.FanoutLiveness, Replicas: o.Replicas, History: 1, Storage: jetstream.FileStorage},
		},
		Consumers: map[string][]jetstream.ConsumerConfig{
			PresenceStream: {
				o.durable(PresenceConsumer, "keeps the presence bucket: online while any device is connected", "presence.>", jetstream.DeliverNewPolicy),
			},
			StateStream: {
				o.durable(ProjectorConsumer, "applies state events to the store (the API applies them too, at once; this repairs a crash in between)", StateAll, jetstream.DeliverAllPolicy),
			},
			ChatStream: {
				// Explicit acks, safe for any number of pullers; the persister of an embedded
				// store, its only puller, makes it ack all when it starts (persister.Config.Sole).
				o.durable(PersisterConsumer, "writes conversation events to the store", ChatAll, jetstream.DeliverAllPolicy),
				o.durable(ProjectorConsumer, "applies membership changes to the store in stream order", ChatMembers, jetstream.DeliverAllPolicy),
				o.searchDurable(),
			},
		},
		PullerSets: map[string][]string{ChatStream: {PersisterConsumer}},
	}
	// Ack all: one instance pulls a partition at a time (the pinned priority group), in stream
	// order, so one ack settles a chunk; an instance taking a partition over from a gone owner
	// resets the consumer to its ack floor first.
	for p := range o.FanoutPartitions {
		d.Consumers[ChatStream] = append(d.Consumers[ChatStream], jetstream.ConsumerConfig{
			Durable:        FanoutConsumerName(p, o.FanoutPartitions),
			Description:    fmt.Sprintf("routes conversation events to the gateways of member devices (partition %d of %d)", p, o.FanoutPartitions),
			FilterSubject:  ChatAll,
			AckPolicy:      jetstream.AckAllPolicy,
			AckWait:        o.FanoutAckWait,
			MaxDeliver:     o.MaxDeliver,
			MaxAckPending:  FanoutMaxAckPending,
			DeliverPolicy:  jetstream.DeliverNewPolicy,
			Replicas:       o.Replicas,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{FanoutGroup},
			PinnedTTL:      o.FanoutPinnedTTL(),
		})
	}
	d.addPush(o)
	return d
}

// FanoutConsumerName is the durable consumer of fanout partition p of n: "fanout" when there
// is one partition, "fanout-<p>" otherwise.
func FanoutConsumerName(p, n int) string {
	if n == 1 {
		return FanoutConsumer
	}
	return fmt.Sprintf("%s-%d", FanoutConsumer, p)
}

// FanoutPartition is the fanout partition that delivers to a gateway.
func FanoutPartition(gatewayID string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(gatewayID))
	return int(h.Sum32() % uint32(n))
}

// consentStream is CONSENT: a copy of the consent events of STATE (ConsentSubjects), which
// JetStream itself keeps, through one source with those filters (one sourcing consumer, so
// the copy keeps STATE's order). The processes that only enforce consent (gateway, fanout,
// presence, push) read it instead of STATE, which also holds password hashes and device and
// push token events that are none of their business. Nothing publishes to it (it has no
// subjects of its own); each event keeps its STATE seq in the Nats-Stream-Source header. Only
// the last event of each subject is kept: that is all pkg/consent reads.
func consentStream(o Options) jetstream.StreamConfig {
	transforms := make([]jetstream.SubjectTransformConfig, len(ConsentSubjects))
	for i, subject := range ConsentSubjects {
		transforms[i] = jetstream.SubjectTransformConfig{Source: subject} // no destination: kept as is
	}
	return jetstream.StreamConfig{
		Name:              ConsentStream,
		Description:       "natter consent events copied from STATE (direct conversations, blocks, presence settings), the last of each subject",
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          o.Replicas,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Sources:           []*jetstream.StreamSource{{Name: StateStream, SubjectTransforms: transforms}},
		AllowDirect:       o.Replicas == 1,
	}
}
