// Package persister is the durable consumer that writes CHAT timeline events into the store,
// and read and delivered receipts into its watermarks.
// Membership changes are not its to apply: its workers run in parallel, and membership must be
// applied in stream order (the API does it right after its serialized publish, fanout before it
// routes anything later; see pkg/membership).
// Its ack floor is the store's completeness mark: every event at or below it is stored
// (timeline.Reader relies on that). Writes are idempotent, so any range can be replayed.
package persister

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/streams"
)

// Config tunes the persister.
type Config struct {
	// Sole: this persister is its consumer's only puller, because it writes a store embedded in
	// its process that no other process writes (Pebble, not served to persisters of other
	// processes with --store remote). Its consumer then acks all — one ack settles a chunk
	// instead of one an event — and it writes each chunk in stream order on one worker,
	// retrying a failed write in place. Otherwise persister instances share the consumer, finish
	// chunks out of order and ack each event. Start makes the consumer's ack policy match.
	Sole bool
	// Workers writing one chunk in parallel when not Sole; order does not matter to a store
	// keyed by seq.
	Workers int
	// Linger lets a chunk wait this long after its first event for more, so that at low rates
	// one wait for the disk covers several events instead of one or two. It delays only the
	// persister's acks (history reads take what is not yet stored from the stream).
	Linger time.Duration
	// Gather lets events gather on the server between the persister's pulls (consumer.Config
	// Gather): once caught up, it takes what arrived in this long in one delivery, one chunk
	// and one ack, instead of each event on its own. It delays only the persister's acks.
	Gather time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Workers < 1 || c.Workers > 256 {
		return fmt.Errorf("persister: workers %d not in 1..256", c.Workers)
	}
	if c.Linger < 0 || c.Linger > time.Second {
		return fmt.Errorf("persister: linger %s not in 0..1s", c.Linger)
	}
	if c.Gather < 0 || c.Gather > time.Second {
		return fmt.Errorf("persister: gather %s not in 0..1s", c.Gather)
	}
	return nil
}

// DefaultConfig suits one machine: the embedded store, whose persister is Sole. A store that
// can group commit (store.GroupCommitter, Pebble) waits for the disk once per chunk, after its
// writes; with any other store every write waits, the waits of concurrent writes may share one
// fsync, and the writers in flight set how many events one fsync covers: 32 persisted 2-3× more
// per second than 8 in BenchmarkInsertMessage (pkg/store/pebble) on a 2-core machine, and cost
// only goroutines.
//
// Gather: 20 ms took a paced 3,800 msgs/s from 0.336 to 0.303 CPU s per 1,000 messages and flat
// out from 0.131 to 0.118 (docs/performance.md, twenty-second round); 50 ms did no better.
func DefaultConfig() Config { return Config{Sole: true, Workers: 32, Gather: 20 * time.Millisecond} }

// Deps are what the persister needs from the process.
type Deps struct {
	fx.In
	Log     *zap.Logger
	JS      jetstream.JetStream
	Store   store.Store
	Metrics *consumer.Metrics `optional:"true"`
}

// Persister writes the timeline to the store.
type Persister struct {
	cfg    Config
	deps   Deps
	log    *zap.Logger
	runner *consumer.Runner
	// With a group-committing store, inserts of a chunk skip the wait for the disk and the chunk
	// syncs once before it is acked; unsynced says whether there is anything to sync.
	commit   store.GroupCommitter
	unsynced atomic.Bool
}

// New returns a persister; Start begins consuming.
func New(cfg Config, deps Deps) (*Persister, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Persister{cfg: cfg, deps: deps, log: deps.Log.Named("persister")}, nil
}

// Start binds to the durable consumer and starts consuming. It first makes the consumer's ack
// policy the one Sole asks for (ack all, or explicit); the consumer kit then resets an ack-all
// consumer to its ack floor: what a previous run was delivered and did
// not acknowledge (a crash) comes again at once and first, rather than after the ack wait,
// behind later events whose ack would acknowledge it unwritten.
func (p *Persister) Start(ctx context.Context) error {
	cons, err := p.deps.JS.Consumer(ctx, streams.ChatStream, streams.PersisterConsumer)
	if err != nil {
		return fmt.Errorf("persister: consumer: %w", err)
	}
	want := jetstream.AckExplicitPolicy
	if p.cfg.Sole {
		want = jetstream.AckAllPolicy
	}
	if info := cons.CachedInfo(); info.Config.AckPolicy != want {
		cc := info.Config
		cc.AckPolicy = want
		if err := natsx.RemakeConsumer(ctx, p.deps.JS, streams.ChatStream, info, cc); err != nil {
			return fmt.Errorf("persister: consumer: %w", err)
		}
		p.log.Info("persister consumer made again with its ack policy", zap.Stringer("ack_policy", want),
			zap.Uint64("after_ack_floor", info.AckFloor.Stream))
	}
	var hooks consumer.Hooks
	if gc, ok := p.deps.Store.(store.GroupCommitter); ok {
		p.commit, hooks.Flush = gc, p.sync
	}
	kit := consumer.Config{Name: "persister", Workers: p.cfg.Workers, Linger: p.cfg.Linger, Gather: p.cfg.Gather}
	if p.cfg.Sole {
		kit.Workers, kit.RetryInPlace = 1, true
	}
	p.runner, err = consumer.Start(p.deps.JS, cons, kit, p.Handle, hooks, p.log, p.deps.Metrics)
	if err != nil {
		return fmt.Errorf("persister: %w", err)
	}
	p.log.Info("persister started", zap.Bool("sole", p.cfg.Sole), zap.Int("workers", kit.Workers), zap.Duration("gather", kit.Gather))
	return nil
}

// Stop drains the consumer.
func (p *Persister) Stop(ctx context.Context) error {
	if p.runner == nil {
		return nil
	}
	return p.runner.Stop(ctx)
}

// Handle writes one CHAT event. Timeline events go to the store (an edit, delete or hide also
// revises its target); read and delivered marks raise watermarks.
func (p *Persister) Handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	insert := p.deps.Store.InsertMessage
	if p.commit != nil {
		insert = func(ctx context.Context, m store.Message) (store.Message, bool, error) {
			p.unsynced.Store(true) // before the write: the chunk's sync must not miss it
			return p.commit.InsertMessageUnsynced(ctx, m)
		}
	}
	return apply(ctx, p.deps.Store, insert, p.log, msg.Subject(), meta.Sequence.Stream, msg.Data())
}

// Apply writes one CHAT event at seq into st exactly as the persister does (every write synced):
// the code path natter replay and the start-up repair re-drive a stream range through. It does
// not apply membership (see the package comment); a permanent error (consumer.IsPermanent) marks
// an event that can never be stored.
func Apply(ctx context.Context, st store.Store, log *zap.Logger, subject string, seq uint64, data []byte) error {
	return apply(ctx, st, st.InsertMessage, log, subject, seq, data)
}

type insertFunc func(context.Context, store.Message) (store.Message, bool, error)

func apply(ctx context.Context, st store.Store, insert insertFunc, log *zap.Logger, subject string, seq uint64, data []byte) error {
	if _, kind, _ := streams.ParseChatSubject(subject); kind == streams.KindRead || kind == streams.KindDelivered {
		return advance(ctx, st, data)
	}
	m, ok, err := timeline.FromStream(subject, seq, data)
	if err != nil {
		return consumer.Permanent(err)
	}
	if !ok {
		return nil
	}
	if streams.Revises(m.Kind) {
		if _, ok := st.(store.Reviser); !ok {
			log.Warn("the store cannot revise messages: edit or delete not applied",
				zap.String("conversation", m.ConversationID), zap.Uint64("seq", m.Seq), zap.String("kind", m.Kind))
		}
		if m, err = projection.Revise(ctx, st, m); err != nil {
			return err
		}
	}
	stored, inserted, err := insert(ctx, m)
	if err != nil {
		return fmt.Errorf("persist %s at %d: %w", m.ConversationID, m.Seq, err)
	}
	if !inserted && stored.Seq != m.Seq {
		log.Info("duplicate send outside the dedupe window kept once",
			zap.String("conversation", m.ConversationID), zap.Uint64("seq", m.Seq), zap.Uint64("kept_seq", stored.Seq),
			zap.String("sender", m.SenderID), zap.String("client_msg_id", m.ClientMsgID))
	}
	return nil
}

// sync makes the chunk's unsynced inserts durable before the kit acks them (its Flush hook).
func (p *Persister) sync(ctx context.Context) error {
	if !p.unsynced.Swap(false) {
		return nil
	}
	if err := p.commit.Sync(ctx); err != nil {
		p.unsynced.Store(true)
		return fmt.Errorf("persister: sync chunk: %w", err)
	}
	return nil
}

// advance raises a member's read or delivered watermark (a max: order-free and idempotent).
func advance(ctx context.Context, st store.Store, data []byte) error {
	ev, err := streams.DecodeChatEvent(data)
	if err != nil {
		return consumer.Permanent(err)
	}
	return projection.AdvanceWatermark(ctx, st, ev)
}

// Module runs the persister in an fx graph.
var Module = fx.Module("persister",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, p *Persister) {
		lc.Append(fx.Hook{OnStart: p.Start, OnStop: p.Stop})
	}),
)
