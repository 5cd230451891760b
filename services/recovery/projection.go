// Package recovery keeps the store a projection of the streams that can always be rebuilt: it
// re-drives stream ranges into the store (replay), records in the store how far each stream has
// been projected (positions), makes consistent online checkpoints of the store that say which
// stream sequences they cover (backup), and checks at start-up that the store is not behind what
// the streams can still give it (see docs/operations.md, "Backup and recovery").
//
// A Projection is one stream's way into the store. Replay applies events one at a time in stream
// order, so a projection may rely on order (membership does); every projection is idempotent, so
// any range may be replayed any number of times.
package recovery

import (
	"context"
	"errors"
	"strings"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/services/persister"
	"github.com/natter-chat/natter/streams"
)

// Projection is how one stream is applied to the store.
type Projection struct {
	// Stream is the JetStream stream.
	Stream string
	// Appliers reports whether a durable consumer of the stream applies it to the store in normal
	// operation. The stream's position in the store is the lowest ack floor among them: every
	// event at or below it has been applied by all of them.
	Appliers func(durable string) bool
	// Apply applies one event at seq to st, idempotently. An error that consumer.IsPermanent
	// marks an event that can never be applied (it is counted and skipped); any other error
	// stops the replay at that event.
	Apply func(ctx context.Context, st store.Store, log *zap.Logger, subject string, seq uint64, data []byte) error
}

// Chat projects CHAT: messages, membership events and watermarks through the persister's own
// code path, and membership records through pkg/membership (which the API and the projector
// apply in normal operation; replay is sequential, so it can apply them in stream order too).
var Chat = Projection{
	Stream: streams.ChatStream,
	Appliers: func(durable string) bool {
		return durable == streams.PersisterConsumer || durable == streams.ProjectorConsumer
	},
	Apply: applyChat,
}

// State projects STATE (accounts, direct conversations, devices, push tokens) through
// pkg/projection, the code path of the projector consumer.
var State = Projection{
	Stream:   streams.StateStream,
	Appliers: func(durable string) bool { return durable == streams.ProjectorConsumer },
	Apply: func(ctx context.Context, st store.Store, _ *zap.Logger, subject string, seq uint64, data []byte) error {
		err := projection.Apply(ctx, st, subject, seq, data)
		if errors.Is(err, projection.ErrInvalid) {
			return consumer.Permanent(err)
		}
		return err
	},
}

func applyChat(ctx context.Context, st store.Store, log *zap.Logger, subject string, seq uint64, data []byte) error {
	if _, kind, _ := streams.ParseChatSubject(subject); kind == streams.KindMember {
		// An event that does not decode is the persister's to reject (permanently) below. A
		// rename of a conversation the store does not know changes no record; the event is
		// still part of the timeline.
		if ev, err := streams.DecodeChatEvent(data); err == nil {
			if err := membership.Apply(ctx, st, seq, ev); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return persister.Apply(ctx, st, log, subject, seq, data)
}

// Projections are the streams natter projects into the store, in the order a full rebuild
// applies them: state before the conversation events that refer to it.
func Projections() []Projection { return []Projection{State, Chat} }

// Find returns the projection of stream.
func Find(stream string) (Projection, bool) {
	for _, p := range Projections() {
		if strings.EqualFold(p.Stream, stream) {
			return p, true
		}
	}
	return Projection{}, false
}
