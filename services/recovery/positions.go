package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

// Floor is the lowest ack floor among p's appliers: every event of the stream at or below it has
// been applied to the store by all of them. ok is false when none of them exists yet. An applier
// that has acknowledged the stream's last event matching its filter (a filtered consumer whose
// last match is long past, say) has applied every event up to the stream's last seq, read
// before. That is read from the stream, not from the consumer's pending counts: just after a
// publish those can still count nothing pending for an event the consumer was not delivered.
func Floor(ctx context.Context, js jetstream.JetStream, p Projection) (floor uint64, ok bool, err error) {
	st, err := js.Stream(ctx, p.Stream)
	if err != nil {
		return 0, false, fmt.Errorf("floor of %s: %w", p.Stream, err)
	}
	sinfo, err := st.Info(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("floor of %s: %w", p.Stream, err)
	}
	list := st.ListConsumers(ctx)
	for info := range list.Info() {
		if !p.Appliers(info.Name) {
			continue
		}
		f := info.AckFloor.Stream
		if f < sinfo.State.LastSeq { // only then can the consumer's filter matter
			last, err := lastMatch(ctx, st, info.Config)
			if err != nil {
				return 0, false, fmt.Errorf("floor of %s: %s: %w", p.Stream, info.Name, err)
			}
			if last <= f {
				f = sinfo.State.LastSeq
			}
		}
		if !ok || f < floor {
			floor = f
		}
		ok = true
	}
	if err := list.Err(); err != nil {
		return 0, false, fmt.Errorf("floor of %s: %w", p.Stream, err)
	}
	return floor, ok, nil
}

// lastMatch is the seq of the stream's last event that a consumer configured as cc takes (0:
// none).
func lastMatch(ctx context.Context, st jetstream.Stream, cc jetstream.ConsumerConfig) (uint64, error) {
	filters := slices.Clone(cc.FilterSubjects) // not appended to in place: it is the caller's
	if cc.FilterSubject != "" {
		filters = append(filters, cc.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var last uint64
	for _, f := range filters {
		m, err := st.GetLastMsgForSubject(ctx, f)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, err
		default:
			last = max(last, m.Sequence)
		}
	}
	return last, nil
}

// RecordPositions records in st, for every projection, the floor of its appliers: what the store
// is known to hold. It returns the positions recorded (the store keeps the higher of the old and
// the new one).
func RecordPositions(ctx context.Context, js jetstream.JetStream, st store.Positions, ps []Projection) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, p := range ps {
		floor, ok, err := Floor(ctx, js, p)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := st.RecordPosition(ctx, p.Stream, floor); err != nil {
				return nil, err
			}
		}
		pos, _, err := st.Position(ctx, p.Stream)
		if err != nil {
			return nil, err
		}
		out[p.Stream] = pos
	}
	return out, nil
}

// Recorder records the positions every interval while natter runs, and once more when it stops
// (after the consumers drained, when it is stopped after them): a store that loses the process
// (kill -9) is at most an interval behind its recorded position, which the start-up check then
// replays.
type Recorder struct {
	js       jetstream.JetStream
	st       store.Positions
	ps       []Projection
	interval time.Duration
	log      *zap.Logger
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// StartRecorder starts recording.
func StartRecorder(js jetstream.JetStream, st store.Positions, ps []Projection, interval time.Duration, log *zap.Logger) *Recorder {
	if interval <= 0 {
		interval = time.Second
	}
	r := &Recorder{js: js, st: st, ps: ps, interval: interval, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *Recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.interval+5*time.Second)
		_, err := RecordPositions(ctx, r.js, r.st, r.ps)
		cancel()
		switch {
		case err != nil && !failing:
			r.log.Warn("record stream positions in the store", zap.Error(err)) // once per failing spell
			failing = true
		case err == nil:
			failing = false
		}
	}
}

// Stop stops the loop and records the positions a last time.
func (r *Recorder) Stop(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	if _, err := RecordPositions(ctx, r.js, r.st, r.ps); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("record stream positions: %w", err)
	}
	return nil
}
