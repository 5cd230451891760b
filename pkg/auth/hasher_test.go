package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// blockingHasher replaces bcrypt with a function that records how many run at once and blocks
// until release is closed.
type blockingHasher struct {
	mu           sync.Mutex
	running, max int
	entered      chan struct{}
	release      chan struct{}
}

func newBlocking(h *Hasher) *blockingHasher {
	b := &blockingHasher{entered: make(chan struct{}, 100), release: make(chan struct{})}
	h.hash = func(string, int) ([]byte, error) {
		b.mu.Lock()
		b.running++
		b.max = max(b.max, b.running)
		b.mu.Unlock()
		b.entered <- struct{}{}
		<-b.release
		b.mu.Lock()
		b.running--
		b.mu.Unlock()
		return []byte("hash"), nil
	}
	return b
}

func TestHasherBoundsConcurrentHashes(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(MinPasswordCost, 2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := newBlocking(h)
	const callers = 10
	errs := make(chan error, callers)
	for range callers {
		go func() {
			_, err := h.Hash(context.Background(), "password")
			errs <- err
		}()
	}
	<-b.entered
	<-b.entered // two run; the other eight wait for a slot
	close(b.release)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if b.max != 2 {
		t.Fatalf("at most %d hashes ran at once, want 2", b.max)
	}
}

func TestHasherRefusesWhenBusy(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(MinPasswordCost, 1, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	b := newBlocking(h)
	done := make(chan error, 1)
	go func() {
		_, err := h.Hash(context.Background(), "password")
		done <- err
	}()
	<-b.entered // the one slot is held

	if _, err := h.Hash(context.Background(), "password"); !errors.Is(err, ErrBusy) {
		t.Fatalf("hash with every slot held: %v, want ErrBusy", err)
	}
	if err := h.Check(context.Background(), []byte("x"), "password"); !errors.Is(err, ErrBusy) {
		t.Fatalf("check with every slot held: %v, want ErrBusy", err)
	}
	h.wait = time.Hour // only the context can end the wait now
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("hash with a cancelled context: %v, want context.Canceled", err)
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHasherHashesAndChecks(t *testing.T) {
	t.Parallel()
	if _, err := NewHasher(0, 0, time.Second); err == nil {
		t.Fatal("NewHasher with concurrency 0 succeeded")
	}
	h, err := NewHasher(MinPasswordCost, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Check(ctx, hash, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(ctx, hash, "wrong horse"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}
