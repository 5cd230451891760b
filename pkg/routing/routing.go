// Package routing is the routes table: which gateway holds each connected device's socket.
// Gateways write it (Registrar); fanout reads it through an in-memory mirror kept current by a
// KV watch (Table), with a barrier that makes "routes written before this event was published"
// visible before the event is routed.
package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/streams"
)

// Registrar writes one gateway's routes.
type Registrar struct {
	kv      jetstream.KeyValue
	gateway string
}

// NewRegistrar returns a Registrar for the gateway with the given id.
func NewRegistrar(kv jetstream.KeyValue, gatewayID string) *Registrar {
	return &Registrar{kv: kv, gateway: gatewayID}
}

// Put routes (user, device) to this gateway's connection conn and returns the entry's revision.
// It is also the refresh: putting again restarts the route's TTL.
func (r *Registrar) Put(ctx context.Context, userID, deviceID, conn string) (uint64, error) {
	v, err := json.Marshal(streams.Route{Gateway: r.gateway, Conn: conn, Since: time.Now().UnixMilli()})
	if err != nil {
		return 0, fmt.Errorf("encode route: %w", err)
	}
	rev, err := r.kv.Put(ctx, streams.RouteKey(userID, deviceID), v)
	if err != nil {
		return 0, fmt.Errorf("put route %s.%s: %w", userID, deviceID, err)
	}
	return rev, nil
}

// Delete removes the route if it is still the one written at rev: a device that reconnected
// elsewhere in the meantime keeps its newer route.
func (r *Registrar) Delete(ctx context.Context, userID, deviceID string, rev uint64) error {
	err := r.kv.Delete(ctx, streams.RouteKey(userID, deviceID), jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !isWrongLastSequence(err) {
		return fmt.Errorf("delete route %s.%s: %w", userID, deviceID, err)
	}
	return nil
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Device is one routed device of a user.
type Device struct {
	DeviceID string
	Route    streams.Route
}

// Table is a read-only, always-watching mirror of the routes bucket. Safe for concurrent use.
type Table struct {
	log    *zap.Logger
	stream jetstream.Stream
	w      jetstream.KeyWatcher

	mu      sync.Mutex
	byUser  map[string]map[string]streams.Route
	applied uint64        // highest KV revision applied
	changed chan struct{} // closed and replaced on every apply
	done    chan struct{}
}

// Watch loads the whole routes bucket and keeps the mirror current until Stop.
func Watch(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (*Table, error) {
	kv, err := js.KeyValue(ctx, streams.RoutesBucket)
	if err != nil {
		return nil, fmt.Errorf("routes bucket: %w", err)
	}
	stream, err := js.Stream(ctx, "KV_"+streams.RoutesBucket)
	if err != nil {
		return nil, fmt.Errorf("routes stream: %w", err)
	}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("watch routes: %w", err)
	}
	t := &Table{log: log, stream: stream, w: w, byUser: map[string]map[string]streams.Route{},
		changed: make(chan struct{}), done: make(chan struct{})}
	loaded := make(chan struct{})
	go t.run(loaded)
	select {
	case <-loaded:
		return t, nil
	case <-ctx.Done():
		t.Stop()
		return nil, fmt.Errorf("load routes: %w", ctx.Err())
	}
}

func (t *Table) run(loaded chan struct{}) {
	defer close(t.done)
	for e := range t.w.Updates() {
		if e == nil { // end of the initial values
			close(loaded)
			continue
		}
		t.apply(e)
	}
}

func (t *Table) apply(e jetstream.KeyValueEntry) {
	user, device, ok := streams.ParseRouteKey(e.Key())
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		switch e.Operation() {
		case jetstream.KeyValuePut:
			var r streams.Route
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				t.log.Warn("bad route entry", zap.String("key", e.Key()), zap.Error(err))
				break
			}
			devs := t.byUser[user]
			if devs == nil {
				devs = map[string]streams.Route{}
				t.byUser[user] = devs
			}
			devs[device] = r
		default: // delete or purge
			delete(t.byUser[user], device)
			if len(t.byUser[user]) == 0 {
				delete(t.byUser, user)
			}
		}
	}
	t.applied = max(t.applied, e.Revision())
	close(t.changed)
	t.changed = make(chan struct{})
}

// Gateways calls fn once for each gateway holding at least one device of userID.
func (t *Table) Gateways(userID string, fn func(gateway string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var seen [4]string
	n := 0
outer:
	for _, r := range t.byUser[userID] {
		for i := 0; i < n && i < len(seen); i++ {
			if seen[i] == r.Gateway {
				continue outer
			}
		}
		if n < len(seen) {
			seen[n] = r.Gateway
		}
		n++
		fn(r.Gateway)
	}
}

// Devices lists the routed devices of userID.
func (t *Table) Devices(userID string) []Device {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Device, 0, len(t.byUser[userID]))
	for d, r := range t.byUser[userID] {
		out = append(out, Device{DeviceID: d, Route: r})
	}
	return out
}

// Sync is the barrier: it returns once the mirror holds every route written before Sync was
// called (it reads the bucket's last revision, then waits for the watch to apply it), or after
// maxWait when that revision can no longer arrive (it expired before it was watched).
func (t *Table) Sync(ctx context.Context, maxWait time.Duration) error {
	info, err := t.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("routes barrier: %w", err)
	}
	target := info.State.LastSeq
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		t.mu.Lock()
		applied, changed := t.applied, t.changed
		t.mu.Unlock()
		if applied >= target {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			t.log.Warn("routes barrier timed out", zap.Uint64("applied", applied), zap.Uint64("target", target))
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.done:
			return errors.New("routes table stopped")
		}
	}
}

// Stop ends the watch and waits for its goroutine.
func (t *Table) Stop() {
	_ = t.w.Stop()
	<-t.done
}
