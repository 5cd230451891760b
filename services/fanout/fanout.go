// Package fanout is the durable consumer that routes every CHAT timeline event to the gateways
// holding sockets of the conversation's member devices (the sender's other devices included).
//
// The work is split by gateway into partitions (streams.Options.FanoutPartitions): partition p
// is one durable consumer that reads every event, in stream order, and delivers only to the
// gateways with streams.FanoutPartition(gateway) == p. So every gateway, and every device,
// receives events in one global order (the device cursor relies on it), while several fanout
// instances share the delivery work. Each partition's consumer has a pinned-client priority
// group, so exactly one instance is active on it; instances share the partitions out among
// themselves round robin over the live ones (balance.go).
package fanout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/routing"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/streams"
)

// Config tunes fanout.
type Config struct {
	// RouteBarrierWait bounds how long a chunk waits for the routes mirror to catch up.
	RouteBarrierWait time.Duration
	// BarrierWindow is streams.Options.BarrierWindow: a route and consent barrier serves the
	// chunks prepared this long after it began; 0: every chunk passes one of its own.
	BarrierWindow time.Duration
	// PushOnlineLedger writes a "skipped: online" push ledger entry for each connected device of
	// the members of a message, so that `natter push why` can say "you were online". Off by
	// default: it is one KV write per connected device and message, and it cut 100-member group
	// deliveries from 89,000/s to 24,000/s in natter bench. Push requests for members with no
	// connected device go out either way.
	PushOnlineLedger bool
	// Partitions is streams.Options.FanoutPartitions; every process must agree on it.
	Partitions int
	// InstanceID names this instance among the live ones (default: random). Keep it across
	// restarts (natter run stores it in its data dir): a restarted instance then takes its former
	// partitions back at once, as the owner they were pinned to.
	InstanceID string
	// AckDelay lets the ack of a delivered chunk wait this long for a later chunk's, which
	// acknowledges both (consumer.Config AckDelay): at a steady rate most chunks are an event or
	// two, and each ack is a message the server reads and applies. 5 ms: flat out 3–5 % less
	// CPU per message, delivering 2–8 % more; paced, 0.4–0.9 fewer read and write calls a
	// message and a CPU change within the noise (docs/performance.md, thirty-second round). A
	// crash or a takeover then repeats up to that much more of the partition, which its gateways
	// drop as already delivered.
	AckDelay time.Duration
	// Liveness is how long this instance counts as live after refreshing its entry in the
	// fanouts bucket (streams.Options.FanoutLiveness); it refreshes every fifth. A crashed
	// instance's partitions move to the others within about 1.2 × Liveness.
	Liveness time.Duration
}

// DefaultConfig suits one machine.
func DefaultConfig() Config {
	return Config{RouteBarrierWait: 250 * time.Millisecond, BarrierWindow: streams.DefaultBarrierWindow, Partitions: 1, AckDelay: 5 * time.Millisecond,
		Liveness: streams.DefaultOptions().FanoutLiveness}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.RouteBarrierWait <= 0 {
		return fmt.Errorf("fanout: route barrier wait %s must be positive", c.RouteBarrierWait)
	}
	if err := streams.ValidBarrierWindow(c.BarrierWindow); err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	if c.AckDelay < 0 || c.AckDelay > time.Second {
		return fmt.Errorf("fanout: ack delay %s not in 0..1s", c.AckDelay)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("fanout: %d partitions; want at least 1", c.Partitions)
	}
	if c.Liveness <= 0 {
		return fmt.Errorf("fanout: liveness %s must be positive", c.Liveness)
	}
	if c.InstanceID != "" && !streams.ValidToken(c.InstanceID) {
		return fmt.Errorf("fanout: instance id %q is not a valid token", c.InstanceID)
	}
	return nil
}

// Deps are what fanout needs from the process.
type Deps struct {
	fx.In
	Log     *zap.Logger
	NC      *nats.Conn
	JS      jetstream.JetStream
	Store   store.Store
	Metrics *consumer.Metrics `optional:"true"`
	// Consent decides who receives whose messages, receipts and typing; nil: fanout follows
	// STATE with a mirror of its own.
	Consent *consent.Table `optional:"true"`
	// Local are the gateways of this process, which take their deliveries by direct calls;
	// nil: every gateway over NATS.
	Local *streams.LocalGateways `optional:"true"`
}

// Fanout routes events to gateways.
type Fanout struct {
	cfg       Config
	deps      Deps
	log       *zap.Logger
	courier   streams.Courier
	routes    *routing.Table
	consent   *consent.Table
	barrier   barrier
	ownTable  bool // consent is this fanout's own mirror, stopped with it
	typing    *nats.Subscription
	instances jetstream.KeyValue // the fanouts bucket: one entry per live instance
	live      *liveSet           // what this instance sees of the fanouts bucket
	prevLive  []string           // the live instances at the last rebalance; used by the balancer only
	stale     bool               // the last rebalance found this instance's own refreshes not coming back; balancer only
	stop      chan struct{}      // closed by Stop: the balancer and the heartbeat end
	loops     sync.WaitGroup     // the balancer and the heartbeat

	mu    sync.Mutex
	parts map[int]*partition // the partitions this instance is consuming
}

// partition is one fanout partition this instance consumes.
type partition struct {
	f       *Fanout
	p       int
	name    string // its durable consumer
	cons    jetstream.Consumer
	runner  *consumer.Runner
	next    uint64  // the stream seq expected next (0: not known yet); used by the runner's one worker
	pending pending // this chunk's push publishes (push.go)
	chain   uint64  // this run's random chain id (streams.Delivery.Chain)
	members memberCache
	users   []string        // the worker's scratch: the members an event is routed to
	online  []bool          // the worker's scratch: whether users[i] has a device connected
	mine    map[string]bool // gateway -> whether this partition delivers to it (delivers)

	sendMu sync.Mutex        // numbers and publishes one link at a time: the worker, and probe
	sent   map[string]uint64 // gateway -> N of the last delivery published to it
	ended  bool              // the chains were ended: nothing more is sent
	// overNATS: this chunk handed a delivery to the NATS connection, which flush must see
	// reach the server (deliveries to local gateways are done when sent).
	overNATS atomic.Bool
}

// New returns a fanout; Start begins consuming.
func New(cfg Config, deps Deps) (*Fanout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = strings.ToLower(ulid.Make().String())
	}
	log := deps.Log.Named("fanout").With(zap.String("instance", cfg.InstanceID))
	f := &Fanout{cfg: cfg, deps: deps, log: log, courier: streams.Courier{NC: deps.NC, Local: deps.Local},
		parts: map[int]*partition{}, stop: make(chan struct{})}
	f.barrier = barrier{window: f.cfg.BarrierWindow, sync: f.syncMirrors}
	return f, nil
}

// Start loads the routes mirror, takes this instance's share of the partitions and keeps
// rebalancing as instances come and go.
func (f *Fanout) Start(ctx context.Context) error {
	var err error
	if f.instances, err = f.deps.JS.KeyValue(ctx, streams.FanoutsBucket); err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	if f.live, err = watchLive(ctx, f.instances); err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	// Who held what before this instance (or its previous run, under the same id) came.
	f.prevLive = f.live.liveAt(time.Now(), f.cfg.Liveness)
	if f.consent = f.deps.Consent; f.consent == nil {
		if f.consent, err = consent.Watch(ctx, f.deps.JS, f.log); err != nil {
			_ = f.live.stop()
			return fmt.Errorf("fanout: %w", err)
		}
		f.ownTable = true
	}
	if f.routes, err = routing.Watch(ctx, f.deps.JS, f.log); err != nil {
		_ = f.live.stop()
		f.stopConsent()
		return fmt.Errorf("fanout: %w", err)
	}
	fail := func(err error) error {
		_ = f.stopPartitions(ctx)
		f.stopConsent()
		f.routes.Stop()
		_ = f.live.stop()
		return fmt.Errorf("fanout: %w", err)
	}
	joined := time.Now()
	if err := f.refresh(ctx); err != nil {
		return fail(err)
	}
	if err := f.awaitEcho(ctx, joined); err != nil {
		return fail(err)
	}
	if err := f.rebalance(ctx); err != nil {
		return fail(err)
	}
	if f.typing, err = f.deps.NC.QueueSubscribe(streams.TypingAll, streams.FanoutConsumer, f.relayTyping); err != nil {
		return fail(fmt.Errorf("typing: %w", err))
	}
	f.loops.Add(2)
	go f.heartbeat()
	go f.balance()
	f.log.Info("fanout started", zap.Int("partitions", f.cfg.Partitions))
	return nil
}

// Stop leaves the live set, drains and releases every partition and stops the routes mirror.
func (f *Fanout) Stop(ctx context.Context) error {
	if f.typing == nil {
		return nil
	}
	_ = f.typing.Unsubscribe()
	close(f.stop)
	f.loops.Wait()
	if err := f.instances.Delete(ctx, f.cfg.InstanceID); err != nil {
		f.log.Warn("leave the fanouts bucket", zap.Error(err))
	}
	err := f.stopPartitions(ctx)
	f.routes.Stop()
	f.stopConsent()
	return errors.Join(err, f.live.stop())
}

func (f *Fanout) stopConsent() {
	if f.ownTable {
		f.consent.Stop()
	}
}

// receives reports whether member m gets the event at seq of kind from sender: m's membership
// covers seq and, for anything but a membership change (a message, and whatever later refers
// to one), consent lets m see sender's messages (a map lookup).
func (f *Fanout) receives(m store.Member, seq uint64, kind, sender, conv string) bool {
	return m.Sees(seq) && (kind == streams.KindMember || f.consent.SeesMessage(m.UserID, sender, conv))
}

// concerns reports whether the member event ev at seq concerns m without m seeing it: it names
// m (an invitation, or its decline or withdrawal) or changed m's record (the group's deletion
// ending m's invitation). Such an event reaches m's devices too, so that every device of an
// invitee learns of the invitation, and of its end, at once.
func concerns(m store.Member, seq uint64, ev streams.ChatEvent) bool {
	return ev.Kind == streams.KindMember && ev.Member != nil && (m.ChangedSeq == seq || slices.Contains(ev.Member.UserIDs, m.UserID))
}

// startPartition starts consuming partition p.
func (f *Fanout) startPartition(ctx context.Context, p int) error {
	part := &partition{f: f, p: p, name: streams.FanoutConsumerName(p, f.cfg.Partitions), chain: rand.Uint64() | 1, sent: map[string]uint64{},
		members: memberCache{now: time.Now}}
	var err error
	part.cons, err = f.deps.JS.Consumer(ctx, streams.ChatStream, part.name)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", part.name, err)
	}
	part.runner, err = consumer.Start(f.deps.JS, part.cons, consumer.Config{Name: part.name, Workers: 1, MaxChunk: 512, RetryInPlace: true, PriorityGroup: streams.FanoutGroup, AckDelay: f.cfg.AckDelay},
		part.handle, consumer.Hooks{
			// Routes and consent as of the chunk's events: nothing in it is routed on a table
			// older than they are.
			Prepare: f.barrier.pass,
			Flush:   part.flush,
		}, f.log, f.deps.Metrics)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.parts[p] = part
	f.mu.Unlock()
	return nil
}

// stopPartition drains partition p (everything pulled is handled and acknowledged) and then, if
// this instance held its pin, unpins it, so the instance taking it over starts right away,
// exactly after what was acked.
func (f *Fanout) stopPartition(ctx context.Context, p int) error {
	f.mu.Lock()
	part := f.parts[p]
	delete(f.parts, p)
	f.mu.Unlock()
	if part == nil {
		return nil
	}
	if err := part.runner.Stop(ctx); err != nil {
		return err // not drained: leave the pin to lapse, so redeliveries go first
	}
	part.end()
	if part.runner.Pulled() == 0 {
		// Never pinned here: the pin, if any, is another instance's, not ours to give away.
		return nil
	}
	stream, err := f.deps.JS.Stream(ctx, streams.ChatStream)
	if err == nil {
		err = stream.UnpinConsumer(ctx, part.name, streams.FanoutGroup)
	}
	if err != nil {
		f.log.Debug("unpin partition", zap.String("consumer", part.name), zap.Error(err))
	}
	return nil
}

func (f *Fanout) stopPartitions(ctx context.Context) error {
	var errs []error
	for _, p := range f.owned() {
		errs = append(errs, f.stopPartition(ctx, p))
	}
	return errors.Join(errs...)
}

// owned lists the partitions this instance consumes, in order.
func (f *Fanout) owned() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := make([]int, 0, len(f.parts))
	for p := range f.parts {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// partitions lists the partitions this instance consumes.
func (f *Fanout) partitions() []*partition {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := make([]*partition, 0, len(f.parts))
	for _, part := range f.parts {
		parts = append(parts, part)
	}
	return parts
}

// delivers reports whether partition p delivers to gateway gw. Called by the partition's one
// worker only: it remembers the answer for each gateway.
func (part *partition) delivers(gw string) bool {
	mine, ok := part.mine[gw]
	if !ok {
		mine = streams.FanoutPartition(gw, part.f.cfg.Partitions) == part.p
		if part.mine == nil || len(part.mine) >= maxRememberedGateways {
			part.mine = map[string]bool{} // gateways come and go; the live ones are asked again
		}
		part.mine[gw] = mine
	}
	return mine
}

// maxRememberedGateways bounds partition.mine.
const maxRememberedGateways = 1024

// handle routes one event: one Delivery per gateway of this partition that holds any member
// device. Every partition applies membership changes (idempotently) before routing.
func (part *partition) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	seq := meta.Sequence.Stream
	if err := part.inOrder(ctx, seq); err != nil {
		return err
	}
	err = part.route(ctx, seq, msg)
	if err == nil || consumer.IsPermanent(err) { // handled, or never will be: either way done
		part.next = max(part.next, seq+1)
	}
	return err
}

// inOrder makes sure no gateway of this partition gets an event while an earlier one is
// still held by another instance (one that died holding it, say): it would arrive later, after
// a newer event of its conversation, and be dropped as a repeat while the device's cursor moved
// past it. On a gap, every gateway of the partition is told to resync first: its sockets close
// before anything later reaches them and each device catches up from its cursor, below the gap.
func (part *partition) inOrder(ctx context.Context, seq uint64) error {
	if part.next == 0 { // the first event since this instance took the partition
		info, err := part.cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("consumer info: %w", err)
		}
		part.next = info.AckFloor.Stream + 1
	}
	if seq <= part.next {
		return nil // in order, or a repeat of what this partition handled (gateways drop those)
	}
	part.members.clear() // what was handled elsewhere may have changed membership
	gws := slices.DeleteFunc(part.f.routes.AllGateways(), func(gw string) bool { return !part.delivers(gw) })
	for _, gw := range gws {
		if err := part.send(gw, streams.Delivery{Users: []string{}, Resync: true, ResyncBelow: seq}); err != nil {
			return fmt.Errorf("resync: %w", err) // names the gateway
		}
	}
	part.f.log.Warn("events before this one are held elsewhere; its gateways resync",
		zap.String("consumer", part.name), zap.Uint64("seq", seq), zap.Uint64("expected", part.next), zap.Int("gateways", len(gws)))
	part.next = seq // retries of this event do not resync again
	return nil
}

// route handles one event.
func (part *partition) route(ctx context.Context, seq uint64, msg jetstream.Msg) error {
	f := part.f
	conv, kind, ok := streams.ParseChatSubject(msg.Subject())
	if !ok {
		return consumer.Permanent(fmt.Errorf("not a chat subject: %q", msg.Subject()))
	}
	if kind == streams.KindRead || kind == streams.KindDelivered {
		return part.routeReceipt(ctx, conv, msg.Data())
	}
	if kind != streams.KindMsg && kind != streams.KindMember && !streams.Revises(kind) {
		return nil
	}
	ev, err := streams.DecodeChatEvent(msg.Data())
	if err != nil {
		return consumer.Permanent(err)
	}
	// A membership change takes effect here, in stream order, before any later event is routed.
	if kind == streams.KindMember {
		part.members.forget(conv)
	}
	if err := membership.Apply(ctx, f.deps.Store, seq, ev); err != nil {
		return fmt.Errorf("apply membership event %d: %w", seq, err)
	}
	members, err := part.members.get(ctx, f.deps.Store, conv)
	if err != nil {
		return fmt.Errorf("members of %s: %w", conv, err)
	}
	users := part.users[:0]
	for _, m := range members {
		if !f.receives(m, seq, kind, ev.SenderID, conv) && !concerns(m, seq, ev) || !timeline.SeesTarget(m, ev) {
			continue
		}
		users = append(users, m.UserID)
	}
	part.users = users
	online := append(part.online[:0], make([]bool, len(users))...)
	part.online = online
	byGateway := map[string][]string{}
	f.routes.EachGateway(users, func(i int, gw string) {
		online[i] = true
		if part.delivers(gw) {
			byGateway[gw] = append(byGateway[gw], users[i])
		}
	})
	// Push requests need the whole routes table, not one partition's gateways: partition 0
	// sends them, to the message's receivers (users) that have no device connected.
	if kind == streams.KindMsg && part.p == 0 {
		if err := part.requestPushes(seq, ev, users, online); err != nil {
			return err
		}
	}
	if len(byGateway) == 0 {
		return nil
	}
	fev := streams.EventFromChat(seq, ev)
	// Once, for every gateway, into a buffer that holds a message frame without regrowing.
	frame, err := fev.AppendJSON(make([]byte, 0, 320+len(fev.Text)))
	if err != nil {
		return consumer.Permanent(fmt.Errorf("encode frame: %w", err))
	}
	for gw, users := range byGateway {
		if err := part.send(gw, streams.Delivery{Seq: seq, Conversation: ev.ConversationID, Users: users, Frame: frame}); err != nil {
			return err
		}
	}
	return nil
}

// send publishes d to gateway gw as the next link of this partition's chain to it.
func (part *partition) send(gw string, d streams.Delivery) error {
	part.sendMu.Lock()
	defer part.sendMu.Unlock()
	return part.sendLocked(gw, d)
}

func (part *partition) sendLocked(gw string, d streams.Delivery) error {
	d.Chain, d.N = part.chain, part.sent[gw]+1
	overNATS, err := part.f.courier.Deliver(gw, d)
	if overNATS {
		part.overNATS.Store(true)
	}
	if err != nil {
		return err // not sent: the number is not used up
	}
	part.sent[gw] = d.N
	return nil
}

// end tells every gateway this run fed that its chain ends here, so that the next owner's chain
// follows on without a resync. It runs once the partition is drained: everything below
// part.next was handled and acknowledged.
func (part *partition) end() {
	part.sendMu.Lock()
	defer part.sendMu.Unlock()
	for gw := range part.sent {
		if err := part.sendLocked(gw, streams.Delivery{Users: []string{}, End: true, Seq: part.next}); err != nil {
			part.f.log.Debug("end the chain to a gateway", zap.String("gateway", gw), zap.Error(err))
		}
	}
	part.ended = true
}

// probe sends every gateway this run fed an empty link of its chain. After this instance's
// connection to NATS was lost and came back, deliveries may have been lost with it; a probe
// lets each gateway see the hole now rather than at its next delivery (a quiet gateway's next
// delivery may be far off). Such a gateway resyncs all its sockets: a probe names no seq.
func (part *partition) probe() {
	part.sendMu.Lock()
	defer part.sendMu.Unlock()
	if part.ended {
		return
	}
	for gw := range part.sent {
		if err := part.sendLocked(gw, streams.Delivery{Users: []string{}}); err != nil {
			part.f.log.Debug("probe a gateway's chain", zap.String("gateway", gw), zap.Error(err))
		}
	}
}

// Module runs fanout in an fx graph.
var Module = fx.Module("fanout",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, f *Fanout) {
		lc.Append(fx.Hook{OnStart: f.Start, OnStop: f.Stop})
	}),
)

// LoadOrCreateInstanceID reads this instance's id from path, creating the file with a new random
// id the first time, so that the instance keeps its identity — and its partitions — across
// restarts.
func LoadOrCreateInstanceID(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if !streams.ValidToken(id) {
			return "", fmt.Errorf("fanout: instance id %q in %s is not a valid token", id, path)
		}
		return id, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("fanout: instance id: %w", err)
	}
	id := strings.ToLower(ulid.Make().String())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("fanout: instance id: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("fanout: instance id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("fanout: instance id: %w", err)
	}
	return id, nil
}
