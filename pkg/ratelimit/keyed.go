package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is how many keys a limit remembers unless told otherwise.
const DefaultMaxKeys = 100_000

// Keyed is one token bucket per key (an address, a handle, an account) for at most maxKeys
// keys. A key unseen for r.Per has a full bucket again, so forgetting it loses nothing; such keys
// are forgotten as new ones arrive. A nil *Keyed allows everything. Safe for concurrent use.
type Keyed struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	keys  *lru[*rate.Limiter]
}

// NewKeyed returns nil (which allows everything) for Off or the zero Rate.
func NewKeyed(r Rate, maxKeys int) *Keyed {
	if r.N <= 0 || r.Per <= 0 {
		return nil
	}
	return &Keyed{
		limit: rate.Limit(float64(r.N) / r.Per.Seconds()), burst: r.N,
		keys: newLRU[*rate.Limiter](maxKeys, r.Per),
	}
}

// Wait takes one token of key's bucket at now and returns 0, or takes none and returns how long
// until one is there.
func (k *Keyed) Wait(key string, now time.Time) time.Duration {
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

// Len is how many keys are remembered.
func (k *Keyed) Len() int {
	if k == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys.len()
}

// Failures counts attempts of one key (a handle's logins) that did not succeed: at most max
// within a window that starts at the first, after which attempts are refused until the window
// ends. An attempt counts when it starts (so parallel guesses cannot exceed max) and a success
// clears the count. A nil *Failures allows everything. Safe for concurrent use.
type Failures struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	keys   *lru[*failureCount]
}

type failureCount struct {
	start time.Time
	n     int
}

// NewFailures returns nil (which allows everything) for maxFailures < 0.
func NewFailures(maxFailures int, window time.Duration, maxKeys int) *Failures {
	if maxFailures < 0 {
		return nil
	}
	return &Failures{max: maxFailures, window: window, keys: newLRU[*failureCount](maxKeys, window)}
}

// Begin counts an attempt for key at now and returns 0, or counts none and returns how long
// until the window ends when max attempts already failed within it.
func (f *Failures) Begin(key string, now time.Time) time.Duration {
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

// Succeeded clears key's count.
func (f *Failures) Succeeded(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys.delete(key)
}

// Undo takes back an attempt that never checked a password (no hashing slot came free).
func (f *Failures) Undo(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.keys.peek(key); ok && c.n > 0 {
		c.n--
	}
}

// Len is how many keys are remembered.
func (f *Failures) Len() int {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys.len()
}
