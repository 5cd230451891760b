package recovery

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
)

// Store is a store that records its stream positions: what the start-up check, backups and
// replays into the store need.
type Store interface {
	store.Store
	store.Positions
}

// RepairHint is the command that rebuilds a store the streams still cover, named in the errors
// of Check.
const RepairHint = "natter run --repair"

// Check compares the store with the streams before natter serves. It returns an error (one line,
// naming the command that repairs it) when the store cannot be trusted:
//
//   - the store is empty while a stream holds events: a lost store. With repair, and when the
//     stream still holds its first event, the stream is replayed into the store;
//   - the store's position is below what the stream still holds (its first seq > position+1):
//     events are gone from both, only a backup has them;
//   - a stream is behind the store's position: a lost or older stream, whose new events would
//     take seqs the store already holds. With repair, the stream continues after the position.
//
// A store behind its consumers' ack floor by a gap the stream covers (a kill -9 between two
// position records, a restored backup) is caught up by replaying the gap, with or without repair.
// A store that holds records but no position (written before positions existed) is trusted up to
// the ack floor. Empty streams and an empty store (a new install) pass.
func Check(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, st Store, ps []Projection, repair bool, log *zap.Logger) error {
	empty, err := st.Empty(ctx)
	if err != nil {
		return fmt.Errorf("start-up check: %w", err)
	}
	for _, p := range ps {
		if err := check(ctx, js, nc, st, p, empty, repair, log); err != nil {
			return err
		}
	}
	return nil
}

func check(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, st Store, p Projection, empty, repair bool, log *zap.Logger) error {
	stream, err := js.Stream(ctx, p.Stream)
	if err != nil {
		return fmt.Errorf("start-up check: %s: %w", p.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("start-up check: %s: %w", p.Stream, err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	pos, havePos, err := st.Position(ctx, p.Stream)
	if err != nil {
		return fmt.Errorf("start-up check: %w", err)
	}
	floor, haveFloor, err := Floor(ctx, js, p)
	if err != nil {
		return fmt.Errorf("start-up check: %w", err)
	}
	log = log.With(zap.String("stream", p.Stream), zap.Uint64("first_seq", first), zap.Uint64("last_seq", last),
		zap.Uint64("store_position", pos), zap.Uint64("ack_floor", floor))

	switch {
	case havePos && last < pos:
		if !repair {
			return fmt.Errorf("the %s stream ends at seq %d but the store holds it up to seq %d (a lost or older stream): "+
				"restore the streams from a backup (natter restore --streams), or run %s to continue the stream after seq %d", p.Stream, last, pos, RepairHint, pos)
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSequence(pos+1)); err != nil {
			return fmt.Errorf("start-up repair: continue %s after seq %d: %w", p.Stream, pos, err)
		}
		log.Warn("stream behind the store: it now continues after the store's position", zap.Uint64("next_seq", pos+1))
		return nil

	case empty && !havePos && last > 0:
		if first > 1 || info.State.Msgs == 0 {
			return fmt.Errorf("the store is empty and the %s stream no longer holds seq 1..%d: restore a backup (natter restore --from DIR)", p.Stream, max(first, 2)-1)
		}
		if !repair {
			return fmt.Errorf("the store is empty but the %s stream holds events 1..%d: run %s to rebuild the store from the streams, or natter restore --from DIR a backup", p.Stream, last, RepairHint)
		}
		log.Warn("store empty: rebuilding it from the stream", zap.Uint64("to_seq", last))
		return catchUp(ctx, js, nc, st, p, 1, last, log)

	case !havePos:
		if haveFloor {
			log.Info("store without a recorded position: trusting it up to the ack floor")
			if err := st.RecordPosition(ctx, p.Stream, floor); err != nil {
				return fmt.Errorf("start-up check: %w", err)
			}
		}
		return nil

	case pos+1 < first && info.State.Msgs > 0:
		return fmt.Errorf("the store holds %s up to seq %d but the stream starts at seq %d: events %d..%d are in neither; restore a newer backup (natter restore --from DIR)",
			p.Stream, pos, first, pos+1, first-1)

	case haveFloor && pos < floor:
		log.Info("store behind the consumers' ack floor: replaying the gap", zap.Uint64("events", floor-pos))
		return catchUp(ctx, js, nc, st, p, pos+1, floor, log)
	}
	return nil
}

// catchUp replays from..to of p into st and records to as its position.
func catchUp(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, st Store, p Projection, from, to uint64, log *zap.Logger) error {
	res, err := Run(ctx, js, nc, p.Stream, Target{Apply: Applier(st, p, log)}, Options{Range: Range{FromSeq: from, ToSeq: to}})
	if err != nil {
		return fmt.Errorf("start-up repair: %w", err)
	}
	if err := st.RecordPosition(ctx, p.Stream, to); err != nil {
		return fmt.Errorf("start-up repair: %w", err)
	}
	log.Info("replayed into the store", zap.Int("events", res.Events), zap.Int("rejected", res.Rejected), zap.Uint64("position", to))
	return nil
}

// Applier is p's Apply on st, as a replay Target.Apply.
func Applier(st store.Store, p Projection, log *zap.Logger) func(ctx context.Context, subject string, seq uint64, data []byte) error {
	return func(ctx context.Context, subject string, seq uint64, data []byte) error {
		return p.Apply(ctx, st, log, subject, seq, data)
	}
}
