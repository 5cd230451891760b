package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy: no hashing slot came free within the Hasher's wait bound. Answer "retry later": the
// password was neither hashed nor checked.
var ErrBusy = errors.New("password hashing busy")

// Hasher runs HashPassword and CheckPassword with at most a fixed number of bcrypt computations
// at once, so that a flood of sign-ups and logins holds at most that many CPUs and leaves the
// rest to other traffic. A caller waits for a slot until its context ends or the wait bound
// passes, whichever is first; it never queues longer. Safe for concurrent use.
type Hasher struct {
	cost  int
	wait  time.Duration
	slots chan struct{} // a send takes a slot, a receive frees it

	// hash and check are HashPassword and CheckPassword; tests count concurrent calls.
	hash  func(password string, cost int) ([]byte, error)
	check func(hash []byte, password string) error
}

// NewHasher returns a Hasher hashing at cost (0: bcrypt's default), running at most concurrency
// (at least 1) bcrypt computations at once, and refusing with ErrBusy a caller that got no slot
// within wait.
func NewHasher(cost, concurrency int, wait time.Duration) (*Hasher, error) {
	if concurrency < 1 {
		return nil, fmt.Errorf("hasher: concurrency %d, want at least 1", concurrency)
	}
	if wait < 0 {
		return nil, fmt.Errorf("hasher: wait %s is negative", wait)
	}
	return &Hasher{
		cost: cost, wait: wait, slots: make(chan struct{}, concurrency),
		hash: HashPassword, check: CheckPassword,
	}, nil
}

// Hash is HashPassword within a slot. Errors: ErrBusy, the context's error, or HashPassword's.
func (h *Hasher) Hash(ctx context.Context, password string) ([]byte, error) {
	release, err := h.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return h.hash(password, h.cost)
}

// Check is CheckPassword within a slot: nil on a match, ErrBadPassword on a mismatch, ErrBusy
// or the context's error when no slot came free. A password CheckPassword refuses without
// bcrypt work (over MaxPasswordBytes) takes no slot.
func (h *Hasher) Check(ctx context.Context, hash []byte, password string) error {
	if len(password) > MaxPasswordBytes {
		return ErrBadPassword
	}
	release, err := h.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return h.check(hash, password)
}

// Acquire takes a slot for other bcrypt-priced work; call release exactly once when done.
// Errors: ErrBusy, or the context's error.
func (h *Hasher) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.slots <- struct{}{}:
		return h.release, nil
	default:
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return h.release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }
