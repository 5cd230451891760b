package streams

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func streamByName(t *testing.T, d Definitions, name string) jetstream.StreamConfig {
	t.Helper()
	for _, s := range d.Streams {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stream %s in %d definitions", name, len(d.Streams))
	return jetstream.StreamConfig{}
}

func TestDefineStreams(t *testing.T) {
	o := DefaultOptions()
	d := Define(o)
	names := map[string]bool{}
	for _, s := range d.Streams {
		if names[s.Name] {
			t.Errorf("stream %s defined twice", s.Name)
		}
		names[s.Name] = true
		if s.Storage != jetstream.FileStorage || s.Replicas != o.Replicas || len(s.Subjects) == 0 && len(s.Sources) == 0 {
			t.Errorf("stream %s: storage %v replicas %d subjects %v", s.Name, s.Storage, s.Replicas, s.Subjects)
		}
	}
	// No two streams may claim overlapping subjects (JetStream refuses it at Apply).
	for _, a := range d.Streams {
		for _, b := range d.Streams {
			if a.Name < b.Name && len(a.Subjects) > 0 && len(b.Subjects) > 0 && a.Subjects[0] == b.Subjects[0] {
				t.Errorf("streams %s and %s share %s", a.Name, b.Name, a.Subjects[0])
			}
		}
	}

	chat := streamByName(t, d, ChatStream)
	if chat.Duplicates <= 0 || chat.Duplicates != o.DuplicateWindow {
		t.Errorf("CHAT duplicate window %s, want %s (> 0)", chat.Duplicates, o.DuplicateWindow)
	}
	if chat.Storage != jetstream.FileStorage {
		t.Errorf("CHAT storage %v, want file", chat.Storage)
	}
	if !chat.AllowDirect {
		t.Error("a single-replica CHAT must allow direct gets (timeline tail reads by direct get)")
	}
	if r3 := o; true {
		r3.Replicas = 3
		if streamByName(t, Define(r3), ChatStream).AllowDirect {
			t.Error("a replicated CHAT must not allow direct gets: a follower may answer with a stale head")
		}
	}
	if chat.Retention != jetstream.LimitsPolicy {
		t.Errorf("CHAT retention %v, want limits (many independent consumers)", chat.Retention)
	}
	if !slices.Equal(chat.Subjects, []string{"chat.>"}) {
		t.Errorf("CHAT subjects %v", chat.Subjects)
	}
	if chat.MaxAge != o.ChatMaxAge || chat.MaxAge <= o.DuplicateWindow {
		t.Errorf("CHAT max age %s must be the option %s and exceed the duplicate window", chat.MaxAge, o.ChatMaxAge)
	}
	if chat.MaxBytes != -1 || chat.Discard != jetstream.DiscardOld {
		t.Errorf("CHAT max bytes %d discard %v", chat.MaxBytes, chat.Discard)
	}

	pres := streamByName(t, d, PresenceStream)
	if !slices.Equal(pres.Subjects, []string{"presence.>"}) || pres.MaxAge != o.PresenceMaxAge || pres.MaxAge <= 0 {
		t.Errorf("PRESENCE subjects %v max age %s", pres.Subjects, pres.MaxAge)
	}

	// CONSENT is STATE's consent subjects and nothing else: one source (one order), no subjects
	// of its own (nobody publishes to it), the last event of each subject.
	cons := streamByName(t, d, ConsentStream)
	if len(cons.Subjects) != 0 || len(cons.Sources) != 1 || cons.Sources[0].Name != StateStream || cons.MaxMsgsPerSubject != 1 {
		t.Errorf("CONSENT subjects %v sources %+v max per subject %d", cons.Subjects, cons.Sources, cons.MaxMsgsPerSubject)
	} else {
		var filters []string
		for _, tr := range cons.Sources[0].SubjectTransforms {
			filters = append(filters, tr.Source)
			if tr.Destination != "" {
				t.Errorf("CONSENT renames %s to %s", tr.Source, tr.Destination)
			}
		}
		if !slices.Equal(filters, ConsentSubjects) || slices.Contains(filters, StateAll) {
			t.Errorf("CONSENT copies %v, want %v", filters, ConsentSubjects)
		}
	}

	push := streamByName(t, d, PushStream)
	if push.Retention != jetstream.WorkQueuePolicy {
		t.Errorf("PUSH retention %v, want work queue", push.Retention)
	}
	if !slices.Equal(push.Subjects, []string{"push.>"}) || push.Storage != jetstream.FileStorage {
		t.Errorf("PUSH subjects %v storage %v", push.Subjects, push.Storage)
	}

	// Subjects of the helpers fall inside their streams.
	for subj, stream := range map[string]string{
		ChatSubject("c1", KindMsg): ChatStream, PresenceSubject("u", "d"): PresenceStream, PushSubject("u"): PushStream,
	} {
		s := streamByName(t, d, stream)
		prefix := s.Subjects[0][:len(s.Subjects[0])-1]
		if len(subj) <= len(prefix) || subj[:len(prefix)] != prefix {
			t.Errorf("%s is not under %s's %v", subj, stream, s.Subjects)
		}
	}
}

func TestDefineConsumers(t *testing.T) {
	o := DefaultOptions()
	d := Define(o)
	// The persister must never give up on an event: an abandoned one would leave a hole below its
	// ack floor, which timeline readers take as "stored".
	if o.MaxDeliver != -1 {
		t.Errorf("default max deliver %d, want -1 (never give up)", o.MaxDeliver)
	}
	subjects := map[string][]string{}
	for _, s := range d.Streams {
		subjects[s.Name] = s.Subjects
	}
	for stream, ccs := range d.Consumers {
		if subjects[stream] == nil {
			t.Errorf("consumers on undefined stream %s", stream)
		}
		for _, c := range ccs {
			if c.Durable == "" || c.Name != "" && c.Name != c.Durable {
				t.Errorf("%s consumer %+v is not a durable", stream, c)
			}
			// Ack all only where one puller takes the events in order: a partition's pinned
			// fanout instance, the one search process. Persister instances share theirs.
			wantAck := jetstream.AckExplicitPolicy
			if c.Durable == FanoutConsumer || c.Durable == SearchConsumer {
				wantAck = jetstream.AckAllPolicy
			}
			if c.AckPolicy != wantAck {
				t.Errorf("%s/%s ack policy %v, want %v", stream, c.Durable, c.AckPolicy, wantAck)
			}
			if !slices.Contains(subjects[stream], c.FilterSubject) && !(stream == ChatStream && c.FilterSubject == ChatMembers) {
				t.Errorf("%s/%s filter %q is not %s's subjects %v", stream, c.Durable, c.FilterSubject, stream, subjects[stream])
			}
			wantAckWait := o.AckWait
			if c.Durable == FanoutConsumer {
				wantAckWait = o.FanoutAckWait
			}
			if c.AckWait != wantAckWait || c.AckWait <= 0 {
				t.Errorf("%s/%s ack wait %s", stream, c.Durable, c.AckWait)
			}
			if c.MaxAckPending <= 0 || c.Replicas != o.Replicas {
				t.Errorf("%s/%s max ack pending %d replicas %d", stream, c.Durable, c.MaxAckPending, c.Replicas)
			}
		}
	}
	var names []string
	for _, c := range d.Consumers[ChatStream] {
		names = append(names, c.Durable)
		if want := map[bool]string{true: ChatMembers, false: ChatAll}[c.Durable == ProjectorConsumer]; c.FilterSubject != want {
			t.Errorf("%s filter %q, want %q", c.Durable, c.FilterSubject, want)
		}
		if c.MaxDeliver != o.MaxDeliver {
			t.Errorf("%s max deliver %d, want %d", c.Durable, c.MaxDeliver, o.MaxDeliver)
		}
		switch c.Durable {
		case ProjectorConsumer:
			// Membership is rebuilt from every member event the stream holds.
			if c.DeliverPolicy != jetstream.DeliverAllPolicy {
				t.Errorf("projector deliver policy %v, want all", c.DeliverPolicy)
			}
		case PersisterConsumer, SearchConsumer:
			// The persister's ack floor is the store's completeness mark: it must start at the start.
			// Search indexes everything CHAT holds.
			if c.DeliverPolicy != jetstream.DeliverAllPolicy {
				t.Errorf("%s deliver policy %v, want all", c.Durable, c.DeliverPolicy)
			}
		case FanoutConsumer:
			if c.DeliverPolicy != jetstream.DeliverNewPolicy {
				t.Errorf("fanout deliver policy %v, want new", c.DeliverPolicy)
			}
			// One active instance per partition, and a dead one's events are due for redelivery
			// before the pin moves on (see Options.FanoutAckWait).
			if c.PriorityPolicy != jetstream.PriorityPolicyPinned || !slices.Equal(c.PriorityGroups, []string{FanoutGroup}) {
				t.Errorf("fanout priority %v groups %v, want pinned [%s]", c.PriorityPolicy, c.PriorityGroups, FanoutGroup)
			}
			if c.PinnedTTL <= c.AckWait {
				t.Errorf("fanout pinned ttl %s must exceed its ack wait %s", c.PinnedTTL, c.AckWait)
			}
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{FanoutConsumer, PersisterConsumer, ProjectorConsumer, SearchConsumer}) {
		t.Errorf("CHAT durables %v", names)
	}
}

func TestDefineBuckets(t *testing.T) {
	o := DefaultOptions()
	d := Define(o)
	want := map[string]time.Duration{RoutesBucket: o.RouteTTL, PresenceBucket: 0, GatewaysBucket: o.GatewayTTL}
	seen := map[string]bool{}
	for _, b := range d.Buckets {
		if seen[b.Bucket] {
			t.Errorf("bucket %s defined twice", b.Bucket)
		}
		seen[b.Bucket] = true
		ttl, ok := want[b.Bucket]
		if !ok {
			continue // other components' buckets
		}
		delete(want, b.Bucket)
		if b.TTL != ttl || b.History != 1 || b.Storage != jetstream.FileStorage || b.Replicas != o.Replicas {
			t.Errorf("bucket %s: ttl %s history %d storage %v replicas %d", b.Bucket, b.TTL, b.History, b.Storage, b.Replicas)
		}
	}
	if len(want) > 0 {
		t.Errorf("buckets missing: %v", want)
	}
}

func TestDefineFollowsOptions(t *testing.T) {
	o := DefaultOptions()
	o.Replicas = 3
	o.DuplicateWindow = 5 * time.Minute
	o.AckWait = 7 * time.Second
	o.MaxDeliver = 9
	o.FanoutAckWait = 4 * time.Second
	o.FanoutPartitions = 3
	d := Define(o)
	if got := len(d.Consumers[ChatStream]); got != 6 {
		t.Fatalf("%d CHAT consumers, want the persister, the projector, search and 3 fanout partitions", got)
	}
	for _, s := range d.Streams {
		if s.Replicas != 3 {
			t.Errorf("stream %s replicas %d", s.Name, s.Replicas)
		}
	}
	for _, b := range d.Buckets {
		if b.Replicas != 3 {
			t.Errorf("bucket %s replicas %d", b.Bucket, b.Replicas)
		}
	}
	var fanouts []string
	for _, c := range d.Consumers[ChatStream] {
		wantAckWait := 7 * time.Second
		if c.Durable != PersisterConsumer && c.Durable != ProjectorConsumer && c.Durable != SearchConsumer {
			fanouts, wantAckWait = append(fanouts, c.Durable), 4*time.Second
		}
		if c.Replicas != 3 || c.AckWait != wantAckWait || c.MaxDeliver != 9 {
			t.Errorf("consumer %s: replicas %d ack wait %s max deliver %d", c.Durable, c.Replicas, c.AckWait, c.MaxDeliver)
		}
	}
	if !slices.Equal(fanouts, []string{"fanout-0", "fanout-1", "fanout-2"}) {
		t.Errorf("fanout partitions %v", fanouts)
	}
	if got := streamByName(t, d, ChatStream).Duplicates; got != 5*time.Minute {
		t.Errorf("duplicate window %s", got)
	}
	// Define returns fresh values: changing one result does not change the next.
	d.Streams[0].Subjects[0] = "mutated"
	if Define(o).Streams[0].Subjects[0] == "mutated" {
		t.Error("Define shares slices between calls")
	}
}

func TestFanoutPartitionSpreadsGateways(t *testing.T) {
	const n, gateways = 4, 400
	count := make([]int, n)
	for i := range gateways {
		gw := fmt.Sprintf("gw-%d", i)
		p := FanoutPartition(gw, n)
		if p != FanoutPartition(gw, n) || p < 0 || p >= n {
			t.Fatalf("partition of %s: %d", gw, p)
		}
		count[p]++
	}
	for p, c := range count {
		if c < gateways/n/2 {
			t.Errorf("partition %d got %d of %d gateways: %v", p, c, gateways, count)
		}
	}
	if FanoutPartition("anything", 1) != 0 {
		t.Error("one partition must take every gateway")
	}
}
