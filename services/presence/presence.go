// Package presence is the consumer that keeps the presence bucket (run one instance: it applies
// connects and disconnects in stream order, retrying in place rather than letting a later event
// overtake a failed one): a user is online while any of
// their devices is connected, and offline (with the time last seen) when the last one goes — by a
// clean close, a heartbeat timeout, or its gateway dying. A dead gateway publishes nothing, so a
// sweep drops the devices of gateways whose discovery entry lapsed (no per-user heartbeats ride
// the bus). Changes are pushed to the users who share a direct conversation with the user.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/routing"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// Config tunes presence.
type Config struct {
	// Sweep is how often devices of dead gateways are dropped.
	Sweep time.Duration
	// GatewayTTL is how stale a gateway's discovery entry may be before its devices count as gone.
	GatewayTTL time.Duration
}

// DefaultConfig follows streams.DefaultOptions; a natter process derives both fields from its
// streams.Options (app.Config.Derived).
func DefaultConfig() Config {
	o := streams.DefaultOptions()
	return Config{Sweep: o.GatewayRefresh(), GatewayTTL: o.GatewayTTL}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Sweep <= 0 || c.GatewayTTL <= 0 {
		return errors.New("presence: sweep and gateway ttl must be positive")
	}
	return nil
}

// Deps are what presence needs from the process.
type Deps struct {
	fx.In
	Log     *zap.Logger
	NC      *nats.Conn
	JS      jetstream.JetStream
	Store   store.Store
	Metrics *consumer.Metrics `optional:"true"`
	// Consent says who may see whose presence; nil: presence follows STATE with a mirror of
	// its own.
	Consent *consent.Table `optional:"true"`
	// Local are the gateways of this process, which take their deliveries by direct calls;
	// nil: every gateway over NATS.
	Local *streams.LocalGateways `optional:"true"`
}

// Presence keeps the presence bucket.
type Presence struct {
	cfg      Config
	deps     Deps
	log      *zap.Logger
	courier  streams.Courier
	kv       jetstream.KeyValue
	gateways jetstream.KeyValue
	routes   *routing.Table
	consent  *consent.Table
	ownTable bool // consent is this process's own mirror, stopped with it
	runner   *consumer.Runner
	stop     chan struct{}
	swept    chan struct{}
	mu       sync.Mutex // serializes changes of one process (CAS covers several processes)
}

// New returns a presence consumer; Start begins consuming.
func New(cfg Config, deps Deps) (*Presence, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Presence{cfg: cfg, deps: deps, log: deps.Log.Named("presence"), courier: streams.Courier{NC: deps.NC, Local: deps.Local},
		stop: make(chan struct{}), swept: make(chan struct{})}, nil
}

// Start binds the buckets, the routes mirror and the consumer, and starts the sweep.
func (p *Presence) Start(ctx context.Context) error {
	var err error
	if p.kv, err = p.deps.JS.KeyValue(ctx, streams.PresenceBucket); err != nil {
		return fmt.Errorf("presence: bucket: %w", err)
	}
	if p.gateways, err = p.deps.JS.KeyValue(ctx, streams.GatewaysBucket); err != nil {
		return fmt.Errorf("presence: gateways bucket: %w", err)
	}
	if p.consent = p.deps.Consent; p.consent == nil {
		if p.consent, err = consent.Watch(ctx, p.deps.JS, p.log); err != nil {
			return fmt.Errorf("presence: %w", err)
		}
		p.ownTable = true
	}
	if p.routes, err = routing.Watch(ctx, p.deps.JS, p.log); err != nil {
		p.stopConsent()
		return fmt.Errorf("presence: %w", err)
	}
	cons, err := p.deps.JS.Consumer(ctx, streams.PresenceStream, streams.PresenceConsumer)
	if err != nil {
		p.routes.Stop()
		p.stopConsent()
		return fmt.Errorf("presence: consumer: %w", err)
	}
	p.runner, err = consumer.Start(p.deps.JS, cons, consumer.Config{Name: "presence", Workers: 1, RetryInPlace: true}, p.Handle, consumer.Hooks{}, p.log, p.deps.Metrics)
	if err != nil {
		p.routes.Stop()
		p.stopConsent()
		return fmt.Errorf("presence: %w", err)
	}
	go p.sweepLoop()
	return nil
}

// Stop ends the sweep and drains the consumer.
func (p *Presence) Stop(ctx context.Context) error {
	if p.runner == nil {
		return nil
	}
	close(p.stop)
	<-p.swept
	err := p.runner.Stop(ctx)
	p.routes.Stop()
	p.stopConsent()
	return err
}

func (p *Presence) stopConsent() {
	if p.ownTable {
		p.consent.Stop()
	}
}

// Handle applies one connect or disconnect.
func (p *Presence) Handle(ctx context.Context, msg jetstream.Msg) error {
	var ev streams.PresenceEvent
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.UserID == "" || ev.DeviceID == "" {
		return consumer.Permanent(fmt.Errorf("bad presence event: %v", err))
	}
	return p.change(ctx, ev.UserID, func(ps *streams.PresenceStatus) {
		switch ev.State {
		case streams.Online:
			ps.Devices[ev.DeviceID] = streams.DevicePresence{Gateway: ev.Gateway, Session: ev.Session, Since: ev.At}
		case streams.Offline:
			if d, ok := ps.Devices[ev.DeviceID]; ok && d.Session == ev.Session {
				delete(ps.Devices, ev.DeviceID)
			}
		}
		ps.LastSeen = max(ps.LastSeen, ev.At)
	})
}

// change applies edit to a user's status with compare-and-set, and announces an online/offline
// transition to the user's direct contacts.
func (p *Presence) change(ctx context.Context, user string, edit func(*streams.PresenceStatus)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for attempt := 0; attempt < 10; attempt++ {
		var ps streams.PresenceStatus
		var rev uint64
		e, err := p.kv.Get(ctx, user)
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &ps); err != nil {
				p.log.Warn("bad presence entry; starting afresh", zap.String("user", user), zap.Error(err))
				ps = streams.PresenceStatus{}
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("presence of %s: %w", user, err)
		}
		if ps.Devices == nil {
			ps.Devices = map[string]streams.DevicePresence{}
		}
		was := ps.Status
		edit(&ps)
		ps.Status = streams.Offline
		if len(ps.Devices) > 0 {
			ps.Status = streams.Online
		}
		data, _ := json.Marshal(ps)
		if rev == 0 {
			_, err = p.kv.Create(ctx, user, data)
		} else {
			_, err = p.kv.Update(ctx, user, data, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || natsx.IsWrongLastSequence(err) {
			continue // another instance changed it: read again
		}
		if err != nil {
			return fmt.Errorf("presence of %s: %w", user, err)
		}
		if ps.Status != was {
			p.announce(ctx, user, ps)
		}
		return nil
	}
	return fmt.Errorf("presence of %s: too much contention", user)
}

// announce pushes a status change to the users who share an accepted direct conversation with
// user, unless a block either way or user's presence setting keeps it from them
// (consent.Table.SeesPresence). Groups get nothing broadcast: their members ask (protocol
// "presence" frame).
func (p *Presence) announce(ctx context.Context, user string, ps streams.PresenceStatus) {
	ms, err := p.deps.Store.MembershipsOf(ctx, user)
	if err != nil {
		p.log.Warn("announce: memberships", zap.String("user", user), zap.Error(err))
		return
	}
	var contacts []string
	for _, m := range ms {
		if !m.Active() || !consent.Direct(m.ConversationID) || !p.consent.Accepted(m.ConversationID) {
			continue
		}
		members, err := p.deps.Store.Members(ctx, m.ConversationID)
		if err != nil {
			continue
		}
		for _, o := range members {
			if o.UserID != user && o.Active() && p.consent.SeesPresence(o.UserID, user, consent.Ties{Conversation: true, Contact: true}) {
				contacts = append(contacts, o.UserID)
			}
		}
	}
	frame, _ := json.Marshal(protocol.Presence{Type: protocol.TypePresence,
		Users: []protocol.UserStatus{{UserID: user, Status: ps.Status, LastSeen: ps.LastSeen}}})
	if _, err := p.routes.DeliverFrame(p.courier, contacts, frame, nil); err != nil {
		p.log.Warn("announce", zap.String("user", user), zap.Error(err))
	}
}

func (p *Presence) sweepLoop() {
	defer close(p.swept)
	t := time.NewTicker(p.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Sweep)
			if err := p.Sweep(ctx); err != nil {
				p.log.Warn("sweep", zap.Error(err))
			}
			cancel()
		}
	}
}

// Sweep drops the devices of gateways that are no longer alive: their discovery entry expired or
// went stale. Their users go offline, last seen when the gateway was last heard from.
func (p *Presence) Sweep(ctx context.Context) error {
	alive := map[string]int64{}
	lister, err := p.gateways.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list gateways: %w", err)
	}
	for k := range lister.Keys() {
		e, err := p.gateways.Get(ctx, k)
		if err != nil {
			continue
		}
		var gi streams.GatewayInfo
		if json.Unmarshal(e.Value(), &gi) == nil && time.Since(time.UnixMilli(gi.Updated)) < p.cfg.GatewayTTL {
			alive[k] = gi.Updated
		}
	}
	users, err := p.kv.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("list presence: %w", err)
	}
	now := time.Now().UnixMilli()
	for u := range users.Keys() {
		e, err := p.kv.Get(ctx, u)
		if err != nil {
			continue
		}
		var ps streams.PresenceStatus
		if json.Unmarshal(e.Value(), &ps) != nil || ps.Status != streams.Online {
			continue
		}
		dead := false
		for _, d := range ps.Devices {
			if _, ok := alive[d.Gateway]; !ok {
				dead = true
			}
		}
		if !dead {
			continue
		}
		err = p.change(ctx, u, func(ps *streams.PresenceStatus) {
			for id, d := range ps.Devices {
				if _, ok := alive[d.Gateway]; !ok {
					delete(ps.Devices, id)
				}
			}
			if len(ps.Devices) == 0 {
				ps.LastSeen = max(ps.LastSeen, now-p.cfg.GatewayTTL.Milliseconds())
			}
		})
		if err != nil {
			p.log.Warn("sweep user", zap.String("user", u), zap.Error(err))
		}
	}
	return nil
}

// Module runs presence in an fx graph.
var Module = fx.Module("presence",
	fx.Provide(New),
	fx.Invoke(func(lc fx.Lifecycle, p *Presence) {
		lc.Append(fx.Hook{OnStart: p.Start, OnStop: p.Stop})
	}),
)
