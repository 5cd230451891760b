package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

func TestRetryAfterOverridesTheBackoff(t *testing.T) {
	t.Parallel() // mostly waiting out the 700ms asked for, on a server of its own
	for _, inPlace := range []bool{false, true} {
		e := newEnv(t)
		e.publish(t, 1)
		var mu sync.Mutex
		var calls []time.Time
		handle := func(_ context.Context, _ jetstream.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, time.Now())
			if len(calls) == 1 {
				return RetryAfter(errors.New("throttled"), 700*time.Millisecond)
			}
			return nil
		}
		r, err := Start(e.js, e.cons, Config{Name: "retry-after", Backoff: []time.Duration{10 * time.Millisecond}, RetryInPlace: inPlace},
			handle, Hooks{}, zap.NewNop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(calls)
			mu.Unlock()
			if n >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := r.Stop(e.ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(calls) != 2 {
			t.Fatalf("in place %v: %d calls, want 2", inPlace, len(calls))
		}
		if gap := calls[1].Sub(calls[0]); gap < 650*time.Millisecond {
			t.Fatalf("in place %v: retried after %s, not the 700ms asked for (backoff is 10ms)", inPlace, gap)
		}
		mu.Unlock()
		if !errors.Is(RetryAfter(context.Canceled, time.Second), context.Canceled) || IsPermanent(RetryAfter(errors.New("x"), 1)) {
			t.Fatal("RetryAfter must wrap its error and stay transient")
		}
	}
}
