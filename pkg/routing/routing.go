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
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
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
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !natsx.IsWrongLastSequence(err) {
		return fmt.Errorf("delete route %s.%s: %w", userID, deviceID, err)
	}
	return nil
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
	nc     *nats.Conn
	// directGet is the subject of a direct get on the bucket's stream when it has one replica
	// and allows them: the barrier reads the last revision there instead of from a stream info
	// request. Empty on a replicated bucket.
	directGet string
	w         jetstream.KeyWatcher
	cancel    context.CancelFunc // ends the watch

	ttl time.Duration // the bucket's TTL: older entries have expired even if no watch said so

	mu      sync.Mutex
	byUser  map[string][]entry // user -> one entry per routed device (a few: a slice is cheaper to walk than a map)
	applied uint64             // highest KV revision applied
	changed chan struct{}      // closed and replaced on every apply
	done    chan struct{}
}

// entry is one device's route with the time its KV entry was written.
type entry struct {
	device string
	streams.Route
	written time.Time
}

// Watch loads the whole routes bucket and keeps the mirror current until Stop. Entries that
// outlive the bucket's TTL are ignored and dropped: JetStream removes them silently, without
// telling watchers.
func Watch(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (*Table, error) {
	kv, err := js.KeyValue(ctx, streams.RoutesBucket)
	if err != nil {
		return nil, fmt.Errorf("routes bucket: %w", err)
	}
	stream, err := js.Stream(ctx, "KV_"+streams.RoutesBucket)
	if err != nil {
		return nil, fmt.Errorf("routes stream: %w", err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("routes bucket status: %w", err)
	}
	// The watch lives until Stop, not as long as ctx; cancelling its context also ends the
	// library's own goroutine when the connection is already closed.
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch routes: %w", err)
	}
	var directGet string
	if cfg := stream.CachedInfo().Config; cfg.Replicas <= 1 && cfg.AllowDirect {
		directGet = "$JS.API.DIRECT.GET." + cfg.Name
	}
	t := &Table{log: log, stream: stream, nc: js.Conn(), directGet: directGet, w: w, cancel: cancel, ttl: status.TTL(), byUser: map[string][]entry{},
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
			next := entry{device, r, e.Created()}
			if i := slices.IndexFunc(devs, func(d entry) bool { return d.device == device }); i >= 0 {
				devs[i] = next
			} else {
				t.byUser[user] = append(devs, next)
			}
		default: // delete or purge
			t.keep(user, func(d entry) bool { return d.device != device })
		}
	}
	t.applied = max(t.applied, e.Revision())
	close(t.changed)
	t.changed = make(chan struct{})
}

// EachGateway calls fn(i, gateway) once for each gateway holding at least one device of users[i],
// in the order of users, under one lock and one reading of the clock: fanout asks it for every
// member of a conversation, for every event. A user it never calls fn for has no device
// connected. fn must not call the Table.
func (t *Table) EachGateway(users []string, fn func(i int, gateway string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cutoff := t.cutoff()
	for i, u := range users {
		var buf [8]string
		seen := buf[:0]
		for _, r := range t.liveAt(u, cutoff) {
			if !slices.Contains(seen, r.Gateway) {
				seen = append(seen, r.Gateway)
				fn(i, r.Gateway)
			}
		}
	}
}

// AllGateways lists every gateway that holds a routed device, each once.
func (t *Table) AllGateways() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gws []string
	for user := range t.byUser {
		for _, r := range t.live(user) {
			if !slices.Contains(gws, r.Gateway) {
				gws = append(gws, r.Gateway)
			}
		}
	}
	return gws
}

// Devices lists the routed devices of userID.
func (t *Table) Devices(userID string) []Device {
	t.mu.Lock()
	defer t.mu.Unlock()
	devs := t.live(userID)
	out := make([]Device, 0, len(devs))
	for _, d := range devs {
		out = append(out, Device{DeviceID: d.device, Route: d.Route})
	}
	return out
}

// live returns userID's routes after dropping expired ones; the caller holds t.mu.
func (t *Table) live(userID string) []entry {
	return t.liveAt(userID, t.cutoff())
}

// cutoff is when a route written before it has expired (zero: routes do not expire).
func (t *Table) cutoff() time.Time {
	if t.ttl <= 0 {
		return time.Time{}
	}
	return time.Now().Add(-t.ttl)
}

// liveAt returns userID's routes after dropping those written before cutoff; the caller holds
// t.mu.
func (t *Table) liveAt(userID string, cutoff time.Time) []entry {
	devs := t.byUser[userID]
	if cutoff.IsZero() {
		return devs
	}
	for _, d := range devs {
		if d.written.Before(cutoff) { // rare: only then rewrite the user's entries
			return t.keep(userID, func(d entry) bool { return !d.written.Before(cutoff) })
		}
	}
	return devs
}

// keep drops userID's entries that keep reports false for (the user too, when none is left)
// and returns the rest; the caller holds t.mu.
func (t *Table) keep(userID string, keep func(entry) bool) []entry {
	devs := t.byUser[userID]
	kept := slices.DeleteFunc(devs, func(d entry) bool { return !keep(d) })
	switch {
	case len(kept) == 0:
		delete(t.byUser, userID)
	case len(kept) < len(devs):
		t.byUser[userID] = kept
	}
	return kept
}

// Sync is the barrier: it returns once the mirror holds every route written before Sync was
// called (it reads the bucket's last revision, then waits for the watch to apply it). An error
// after maxWait means the mirror is behind; the caller retries rather than route on a stale table.
func (t *Table) Sync(ctx context.Context, maxWait time.Duration) error {
	target, err := t.lastRevision(ctx)
	if err != nil {
		return fmt.Errorf("routes barrier: %w", err)
	}
	if target == 0 {
		return nil // every route expired or was deleted: nothing more can arrive
	}
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
			return fmt.Errorf("routes barrier: mirror at revision %d, bucket at %d after %s", applied, target, maxWait)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.done:
			return errors.New("routes table stopped")
		}
	}
}

// lastRequest asks a direct get for the stream's last message, whatever its subject.
var lastRequest = []byte(`{"last_by_subj":">"}`)

// directGetTimeout bounds a barrier's direct get when the caller's context does not.
const directGetTimeout = 5 * time.Second

// lastRevision is the bucket's last revision, 0 when it holds no message. Entries leave the
// bucket oldest first (TTL) or by being replaced, so the last message is there whenever any is.
// A direct get (one replica) costs the server a message lookup; a replicated bucket asks its
// leader for the stream info, since a follower may answer a direct get from behind.
func (t *Table) lastRevision(ctx context.Context) (uint64, error) {
	if t.directGet == "" {
		info, err := t.stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		if info.State.Msgs == 0 {
			return 0, nil
		}
		return info.State.LastSeq, nil
	}
	if _, ok := ctx.Deadline(); !ok { // as the jetstream package bounds its own API requests
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, directGetTimeout)
		defer cancel()
	}
	msg, err := t.nc.RequestWithContext(ctx, t.directGet, lastRequest)
	if err != nil {
		return 0, err
	}
	switch status := msg.Header.Get("Status"); status {
	case "":
	case "404":
		return 0, nil
	default:
		return 0, fmt.Errorf("direct get: status %s %s", status, msg.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("direct get: sequence %q: %w", msg.Header.Get(jetstream.SequenceHeader), err)
	}
	return seq, nil
}

// Stop ends the watch and waits for its goroutine.
func (t *Table) Stop() {
	_ = t.w.Stop()
	t.cancel()
	<-t.done
}

// DeliverFrame sends a ready-made client frame (outside the timeline: receipts, typing,
// presence) to the connected devices of users: one streams.Delivery per gateway holding any,
// only to the gateways only accepts (nil: all). It reports whether any went over NATS
// (streams.Courier.Deliver); frame must not change afterwards.
func (t *Table) DeliverFrame(c streams.Courier, users []string, frame []byte, only func(gateway string) bool) (overNATS bool, err error) {
	byGateway := map[string][]string{}
	t.EachGateway(users, func(i int, gw string) {
		if only == nil || only(gw) {
			byGateway[gw] = append(byGateway[gw], users[i])
		}
	})
	for gw, us := range byGateway {
		viaNATS, err := c.Deliver(gw, streams.Delivery{Users: us, Frame: frame})
		overNATS = overNATS || viaNATS
		if err != nil {
			return overNATS, err
		}
	}
	return overNATS, nil
}
