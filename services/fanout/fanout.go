// Package fanout is the durable consumer that routes every CHAT timeline event to the gateways
// holding sockets of the conversation's member devices (the sender's other devices included).
// It handles events one at a time in stream order, so each gateway receives a conversation's
// events in seq order.
package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/routing"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Config tunes fanout.
type Config struct {
	// RouteBarrierWait bounds how long a chunk waits for the routes mirror to catch up.
	RouteBarrierWait time.Duration
	// PushOnlineLedger writes a "skipped: online" push ledger entry for each connected device of
	// the members of a message, so that `natter push why` can say "you were online". Off by
	// default: it is one KV write per connected device and message, and it cut 100-member group
	// deliveries from 89,000/s to 24,000/s in natter bench. Push requests for members with no
	// connected device go out either way.
	PushOnlineLedger bool
}

// DefaultConfig suits one machine.
func DefaultConfig() Config {
	return Config{RouteBarrierWait: 250 * time.Millisecond}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.RouteBarrierWait <= 0 {
		return fmt.Errorf("fanout: route barrier wait %s must be positive", c.RouteBarrierWait)
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
}

// Fanout routes events to gateways.
type Fanout struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	routes  *routing.Table
	runner  *consumer.Runner
	typing  *nats.Subscription
	pending pending // this chunk's push publishes (push.go)
}

// New returns a fanout; Start begins consuming.
func New(cfg Config, deps Deps) (*Fanout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Fanout{cfg: cfg, deps: deps, log: deps.Log.Named("fanout")}, nil
}

// Start loads the routes mirror and starts consuming.
func (f *Fanout) Start(ctx context.Context) error {
	var err error
	f.routes, err = routing.Watch(ctx, f.deps.JS, f.log)
	if err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	cons, err := f.deps.JS.Consumer(ctx, streams.ChatStream, streams.FanoutConsumer)
	if err != nil {
		f.routes.Stop()
		return fmt.Errorf("fanout: consumer: %w", err)
	}
	f.runner, err = consumer.Start(cons, consumer.Config{Name: "fanout", Workers: 1, RetryInPlace: true}, f.Handle,
		consumer.Hooks{
			Prepare: func(ctx context.Context) error { return f.routes.Sync(ctx, f.cfg.RouteBarrierWait) },
			Flush:   f.flush,
		}, f.log, f.deps.Metrics)
	if err != nil {
		f.routes.Stop()
		return fmt.Errorf("fanout: %w", err)
	}
	if f.typing, err = f.deps.NC.QueueSubscribe(streams.TypingAll, streams.FanoutConsumer, f.relayTyping); err != nil {
		_ = f.runner.Stop(ctx)
		f.routes.Stop()
		return fmt.Errorf("fanout: typing: %w", err)
	}
	f.log.Info("fanout started")
	return nil
}

// Stop drains the consumer and stops the routes mirror.
func (f *Fanout) Stop(ctx context.Context) error {
	if f.runner == nil {
		return nil
	}
	_ = f.typing.Unsubscribe()
	err := f.runner.Stop(ctx)
	f.routes.Stop()
	return err
}

// Handle routes one event: one Delivery per gateway that holds any member device.
func (f *Fanout) Handle(ctx context.Context, msg jetstream.Msg) error {
	conv, kind, ok := streams.ParseChatSubject(msg.Subject())
	if !ok {
		return consumer.Permanent(fmt.Errorf("not a chat subject: %q", msg.Subject()))
	}
	if kind == streams.KindRead || kind == streams.KindDelivered {
		return f.routeReceipt(ctx, conv, msg.Data())
	}
	if kind != streams.KindMsg && kind != streams.KindMember {
		return nil
	}
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("metadata: %w", err))
	}
	ev, err := streams.DecodeChatEvent(msg.Data())
	if err != nil {
		return consumer.Permanent(err)
	}
	seq := meta.Sequence.Stream
	// A membership change takes effect here, in stream order, before any later event is routed.
	if err := membership.Apply(ctx, f.deps.Store, seq, ev); err != nil {
		return fmt.Errorf("apply membership event %d: %w", seq, err)
	}
	members, err := f.deps.Store.Members(ctx, conv)
	if err != nil {
		return fmt.Errorf("members of %s: %w", conv, err)
	}
	byGateway := map[string][]string{}
	for _, m := range members {
		if !m.Sees(seq) {
			continue
		}
		f.routes.Gateways(m.UserID, func(gw string) { byGateway[gw] = append(byGateway[gw], m.UserID) })
	}
	if kind == streams.KindMsg {
		if err := f.requestPushes(seq, ev, members); err != nil {
			return err
		}
	}
	for gw, users := range byGateway {
		data, err := json.Marshal(streams.Delivery{Seq: seq, Users: users, Event: ev})
		if err != nil {
			return consumer.Permanent(fmt.Errorf("encode delivery: %w", err))
		}
		if err := f.deps.NC.Publish(streams.DeliverSubject(gw), data); err != nil {
			return fmt.Errorf("deliver to gateway %s: %w", gw, err)
		}
	}
	return nil
}

// Module runs fanout in an fx graph.
var Module = fx.Module("fanout",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, f *Fanout) {
		lc.Append(fx.Hook{OnStart: f.Start, OnStop: f.Stop})
	}),
)
