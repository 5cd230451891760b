// Package projector runs the durable consumers named "projector" that keep the store a
// projection of the streams (pkg/projection): one on STATE applies every state event, one on
// CHAT applies every membership change (chat.*.member), each with one worker, in stream order.
// Writers apply their own events at once (projection.Record, membership.Change); the projector
// applies them again, idempotently, so that an event whose writer died after JetStream
// acknowledged it still reaches the store. It runs with the persister (target persister).
package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Deps are what the projector needs from the process.
type Deps struct {
	fx.In
	Log     *zap.Logger
	JS      jetstream.JetStream
	Store   store.Store
	Metrics *consumer.Metrics `optional:"true"`
}

// Projector applies STATE and CHAT membership events to the store.
type Projector struct {
	deps    Deps
	log     *zap.Logger
	runners []*consumer.Runner
}

// New returns a projector; Start begins consuming.
func New(deps Deps) *Projector {
	return &Projector{deps: deps, log: deps.Log.Named("projector")}
}

// Start binds to both durable consumers and starts consuming.
func (p *Projector) Start(ctx context.Context) error {
	for _, stream := range []string{streams.StateStream, streams.ChatStream} {
		cons, err := p.deps.JS.Consumer(ctx, stream, streams.ProjectorConsumer)
		if err != nil {
			return errors.Join(fmt.Errorf("projector: consumer on %s: %w", stream, err), p.Stop(ctx))
		}
		r, err := consumer.Start(p.deps.JS, cons, consumer.Config{Name: "projector-" + stream, Workers: 1, RetryInPlace: true},
			p.handle, consumer.Hooks{}, p.log, p.deps.Metrics)
		if err != nil {
			return errors.Join(fmt.Errorf("projector: %s: %w", stream, err), p.Stop(ctx))
		}
		p.runners = append(p.runners, r)
	}
	p.log.Info("projector started")
	return nil
}

// Stop drains both consumers.
func (p *Projector) Stop(ctx context.Context) error {
	var errs []error
	for _, r := range p.runners {
		errs = append(errs, r.Stop(ctx))
	}
	p.runners = nil
	return errors.Join(errs...)
}

func (p *Projector) handle(ctx context.Context, msg jetstream.Msg) error {
	err := projection.ApplyMsg(ctx, p.deps.Store, msg)
	if errors.Is(err, projection.ErrInvalid) {
		return consumer.Permanent(err) // the kit logs and terminates it
	}
	return err
}

// Module runs the projector in an fx graph.
var Module = fx.Module("projector",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, p *Projector) {
		lc.Append(fx.Hook{OnStart: p.Start, OnStop: p.Stop})
	}),
)
