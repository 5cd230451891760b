package storetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

const goroutines = 16

// race runs fn(g) on goroutines goroutines released at once and returns their errors.
func race(fn func(g int) error) error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			<-start
			errs[g] = fn(g)
		})
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}

var concurrencyTests = []test{
	{"InsertMessage", func(t *testing.T, s store.Store) {
		const keys = 100
		type result struct {
			m        store.Message
			inserted bool
		}
		var mu sync.Mutex
		results := make(map[uint64][]result) // by the seq of the first message of each key
		record := func(key uint64, m store.Message, inserted bool) {
			mu.Lock()
			defer mu.Unlock()
			results[key] = append(results[key], result{m, inserted})
		}
		// Races start together and drift apart after one insert, so every k is a race of its own:
		// every goroutine inserts the client id "k<k>" of u-alice at a seq of its own, then
		// a message of its own at the seq 100+k.
		for k := range keys {
			err := race(func(g int) error {
				m := msg("cc", uint64(1000+k*goroutines+g), "u-alice", fmt.Sprintf("k%d", k))
				stored, inserted, err := s.InsertMessage(t.Context(), m)
				if err != nil {
					return fmt.Errorf("insert %d: %w", m.Seq, err)
				}
				record(uint64(1000+k*goroutines), stored, inserted)
				return nil
			})
			check(t, err, "concurrent inserts of one client id")
			err = race(func(g int) error {
				m := msg("cc", uint64(100+k), fmt.Sprintf("u-%d", g), "")
				stored, inserted, err := s.InsertMessage(t.Context(), m)
				if err != nil {
					return fmt.Errorf("insert %d: %w", m.Seq, err)
				}
				record(m.Seq, stored, inserted)
				return nil
			})
			check(t, err, "concurrent inserts at one seq")
		}

		var want []store.Message // the winners, newest first
		for _, key := range slices.Backward(slices.Sorted(maps.Keys(results))) {
			var winner *store.Message
			for _, r := range results[key] {
				if r.inserted {
					if winner != nil {
						t.Errorf("seq %d: inserted twice: %+v and %+v", key, *winner, r.m)
					}
					winner = &r.m
				}
			}
			if winner == nil {
				t.Fatalf("seq %d: no goroutine inserted", key)
			}
			for _, r := range results[key] {
				wantMessage(t, r.m, *winner, "seq %d: a losing insert returned", key)
			}
			want = append(want, *winner)
		}
		wantPage(t, s, "cc", store.Page{Limit: store.MaxPageLimit}, want)
		for k := range keys {
			got, err := s.MessageByClientID(t.Context(), "u-alice", fmt.Sprintf("k%d", k))
			check(t, err, "by client id")
			wantMessage(t, got, want[keys-1-k], "MessageByClientID(k%d)", k)
		}
	}},
	{"AdvanceWatermark", func(t *testing.T, s store.Store) {
		// In every round every goroutine advances both marks of one pair with rising, overlapping
		// values, so that nearly every advance writes and races. No advance may return less than
		// an advance that returned before it began, and the end state is the maxima.
		var mu sync.Mutex
		var done, want store.Watermark // max of returned results; max of requests
		rngs := make([]*rand.Rand, goroutines)
		for g := range rngs {
			rngs[g] = rand.New(rand.NewPCG(uint64(g), 7))
		}
		for i := range uint64(300) {
			err := race(func(g int) error {
				w := store.Watermark{ConversationID: "c1", UserID: "u1", Delivered: 1<<32 + i*100 + rngs[g].Uint64N(300), Read: i*100 + rngs[g].Uint64N(300)}
				if rngs[g].IntN(4) == 0 {
					w.Read = 0
				}
				mu.Lock()
				floor := done
				want.Delivered, want.Read = max(want.Delivered, w.Delivered), max(want.Read, w.Read)
				mu.Unlock()
				got, err := s.AdvanceWatermark(t.Context(), w)
				if err != nil {
					return err
				}
				if got.Delivered < max(w.Delivered, floor.Delivered) || got.Read < max(w.Read, floor.Read) {
					return fmt.Errorf("AdvanceWatermark(%+v) = %+v, below the request or an earlier result %+v", w, got, floor)
				}
				mu.Lock()
				done.Delivered, done.Read = max(done.Delivered, got.Delivered), max(done.Read, got.Read)
				mu.Unlock()
				return nil
			})
			check(t, err, "concurrent advances")
		}
		got, err := s.Watermark(t.Context(), "c1", "u1")
		check(t, err, "watermark")
		want.ConversationID, want.UserID = "c1", "u1"
		if got != want {
			t.Errorf("after concurrent advances Watermark = %+v, want the maxima %+v", got, want)
		}
	}},
	{"CreateUser", func(t *testing.T, s store.Store) {
		// In every round everyone wants the handle "h<round>" for an id of its own, and everyone
		// creates the identical user "u-same<round>".
		for round := range 30 {
			var mu sync.Mutex
			var won []string
			err := race(func(g int) error {
				u := store.User{ID: fmt.Sprintf("u%d-%d", round, g), Handle: fmt.Sprintf("h%d", round), CreatedAt: at(uint64(g))}
				err := s.CreateUser(t.Context(), u)
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, u.ID)
					mu.Unlock()
				case !errors.Is(err, store.ErrConflict):
					return err
				}
				return s.CreateUser(t.Context(), store.User{ID: fmt.Sprintf("u-same%d", round), Handle: fmt.Sprintf("same%d", round), CreatedAt: at(1)})
			})
			check(t, err, "concurrent creates")
			if len(won) != 1 {
				t.Fatalf("round %d: %d creates of one handle succeeded (%v), want 1", round, len(won), won)
			}
			got, err := s.UserByHandle(t.Context(), fmt.Sprintf("h%d", round))
			check(t, err, "user by handle")
			if got.ID != won[0] {
				t.Errorf("round %d: handle belongs to %s, want the winner %s", round, got.ID, won[0])
			}
			for g := range goroutines {
				if id := fmt.Sprintf("u%d-%d", round, g); id != won[0] {
					_, err := s.UserByID(t.Context(), id)
					wantErr(t, err, store.ErrNotFound, "user of a losing create")
				}
			}
		}
	}},
}
