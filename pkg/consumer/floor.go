package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Floor is a durable consumer's ack floor as JetStream last told it, shared by everyone who
// waits on it: a reconnect storm or a flat-out sender asks JetStream at most once per Refresh
// between them, not once per socket or send. Safe for concurrent use.
type Floor struct {
	Stream, Consumer string
	Refresh          time.Duration

	mu      sync.Mutex
	value   uint64
	fetched time.Time
}

// Read returns the ack floor. It asks JetStream again only when the known value is below want
// and was fetched at least Refresh ago (want math.MaxUint64: whenever it is that old). A
// consumer that does not exist has the floor 0. With an error, the known value comes too.
func (f *Floor) Read(ctx context.Context, js jetstream.JetStream, want uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.value >= want || time.Since(f.fetched) < f.Refresh {
		return f.value, nil
	}
	f.fetched = time.Now()
	cons, err := js.Consumer(ctx, f.Stream, f.Consumer) // one request: its info
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return f.value, nil
	case err != nil:
		return f.value, fmt.Errorf("ack floor of %s: %w", f.Consumer, err)
	}
	f.value = max(f.value, cons.CachedInfo().AckFloor.Stream)
	return f.value, nil
}
