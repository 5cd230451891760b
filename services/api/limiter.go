package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter is one token bucket per key (an address, a handle, an account) for at most
// maxKeys keys. A key unseen for r.Per has a full bucket again, so forgetting it loses nothing;
// such keys are forgotten as new ones arrive. Safe for concurrent use.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	keys  *lru[*rate.Limiter]
}

// newKeyedLimiter returns nil (which allows everything) for an Off rate.
func newKeyedLimiter(r Rate, maxKeys int) *keyedLimiter {
	if r.off() {
		return nil
	}
	return &keyedLimiter{
		limit: rate.Limit(float64(r.N) / r.Per.Seconds()), burst: r.N,
		keys: newLRU[*rate.Limiter](maxKeys, r.Per),
	}
}

// wait takes one token of key's bucket at now and returns 0, or takes none and returns how long
// until one is there.
func (k *keyedLimiter) wait(key string, now time.Time) time.Duration {
	if k == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	lim := k.keys.get(key, now, func() *rate.Limiter { return rate.NewLimiter(k.limit, k.burst) })
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// failureLimiter counts login attempts of one handle that did not succeed: at most max within a
// window that starts at the first, after which attempts are refused until the window ends. An
// attempt counts when it starts (so parallel guesses cannot exceed max) and a success clears
// the count. Safe for concurrent use.
type failureLimiter struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	keys   *lru[*failureCount]
}

type failureCount struct {
	start time.Time
	n     int
}

// newFailureLimiter returns nil (which allows everything) for maxFailures < 0.
func newFailureLimiter(maxFailures int, window time.Duration, maxKeys int) *failureLimiter {
	if maxFailures < 0 {
		return nil
	}
	return &failureLimiter{max: maxFailures, window: window, keys: newLRU[*failureCount](maxKeys, window)}
}

// begin counts an attempt for key at now and returns 0, or counts none and returns how long
// until the window ends when max attempts already failed within it.
func (f *failureLimiter) begin(key string, now time.Time) time.Duration {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.keys.get(key, now, func() *failureCount { return &failureCount{start: now} })
	if end := c.start.Add(f.window); !now.Before(end) {
		c.start, c.n = now, 0
	} else if c.n >= f.max {
		return end.Sub(now)
	}
	c.n++
	return 0
}

// succeeded clears key's count.
func (f *failureLimiter) succeeded(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys.delete(key)
}

// undo takes back an attempt that never checked a password (no hashing slot came free).
func (f *failureLimiter) undo(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.keys.peek(key); ok && c.n > 0 {
		c.n--
	}
}
