package storetest

import (
	"sync"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
)

var sessionsTests = []test{
	{"CreateGetList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := store.Session{ID: id("sa", at(1)), UserID: "u1", RefreshHash: []byte("hash-a"), UserAgent: "phone app/1.0",
			CreatedAt: at(1), LastUsed: at(1)}
		b := store.Session{ID: id("sb", at(2)), UserID: "u1", RefreshHash: []byte("hash-b"), UserAgent: "",
			CreatedAt: at(2), LastUsed: at(2)}
		other := store.Session{ID: id("sc", at(3)), UserID: "u10", RefreshHash: []byte("hash-c"), CreatedAt: at(3), LastUsed: at(3)}
		for _, v := range []store.Session{b, other, a} {
			check(t, s.CreateSession(ctx, v), "create session %s", v.ID)
		}
		got, err := s.Session(ctx, a.ID)
		check(t, err, "session a")
		if !same(got, a) || got.Revoked() {
			t.Errorf("Session(a) = %+v, want %+v", got, a)
		}
		list, err := s.Sessions(ctx, "u1")
		check(t, err, "sessions of u1")
		if !sameAll(list, []store.Session{a, b}) {
			t.Errorf("Sessions(u1) =\n%+v\nwant\n%+v", list, []store.Session{a, b})
		}
		list, err = s.Sessions(ctx, "u")
		check(t, err, "sessions of u")
		if len(list) != 0 {
			t.Errorf("Sessions(u) = %+v, want none", list)
		}
		_, err = s.Session(ctx, id("nope", at(4)))
		wantErr(t, err, store.ErrNotFound, "unknown session")

		// Creating again changes nothing; another user's session under the same id is a conflict.
		again := a
		again.RefreshHash = []byte("other")
		check(t, s.CreateSession(ctx, again), "create session again")
		if got, _ := s.Session(ctx, a.ID); !same(got, a) {
			t.Errorf("after creating again: %+v, want %+v", got, a)
		}
		stolen := a
		stolen.UserID = "u2"
		wantErr(t, s.CreateSession(ctx, stolen), store.ErrConflict, "create session with a taken id")
	}},
	{"RotateAndRevoke", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		v := store.Session{ID: id("s", at(1)), UserID: "u1", RefreshHash: []byte("h1"), CreatedAt: at(1), LastUsed: at(1)}
		check(t, s.CreateSession(ctx, v), "create session")

		got, err := s.RotateSession(ctx, v.ID, []byte("h1"), []byte("h2"), at(5))
		check(t, err, "rotate")
		v.RefreshHash, v.LastUsed = []byte("h2"), at(5)
		if !same(got, v) {
			t.Errorf("rotated = %+v, want %+v", got, v)
		}
		_, err = s.RotateSession(ctx, v.ID, []byte("h1"), []byte("h3"), at(6))
		wantErr(t, err, store.ErrConflict, "rotate from an old hash")
		// LastUsed never moves back.
		got, err = s.RotateSession(ctx, v.ID, []byte("h2"), []byte("h3"), at(2))
		check(t, err, "rotate with an earlier time")
		v.RefreshHash = []byte("h3")
		if !same(got, v) {
			t.Errorf("rotated = %+v, want %+v", got, v)
		}
		_, err = s.RotateSession(ctx, id("nope", at(1)), []byte("h1"), []byte("h2"), at(6))
		wantErr(t, err, store.ErrNotFound, "rotate an unknown session")

		got, err = s.RevokeSession(ctx, v.ID, at(7))
		check(t, err, "revoke")
		v.RevokedAt = at(7)
		if !same(got, v) || !got.Revoked() {
			t.Errorf("revoked = %+v, want %+v", got, v)
		}
		got, err = s.RevokeSession(ctx, v.ID, at(9))
		check(t, err, "revoke again")
		if !same(got, v) {
			t.Errorf("revoked again = %+v, want the first revocation kept: %+v", got, v)
		}
		if list, _ := s.Sessions(ctx, "u1"); !sameAll(list, []store.Session{v}) {
			t.Errorf("Sessions(u1) = %+v, want the revoked session", list)
		}
		_, err = s.RotateSession(ctx, v.ID, []byte("h3"), []byte("h4"), at(8))
		wantErr(t, err, store.ErrConflict, "rotate a revoked session")
		_, err = s.RevokeSession(ctx, id("nope", at(1)), at(8))
		wantErr(t, err, store.ErrNotFound, "revoke an unknown session")
	}},
	{"OneRotationWins", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		v := store.Session{ID: id("s", at(1)), UserID: "u1", RefreshHash: []byte("h0"), CreatedAt: at(1), LastUsed: at(1)}
		check(t, s.CreateSession(ctx, v), "create session")
		const racers = 8
		var wg sync.WaitGroup
		wins := make(chan []byte, racers)
		for i := range racers {
			wg.Go(func() {
				next := []byte{'n', byte('0' + i)}
				if _, err := s.RotateSession(ctx, v.ID, []byte("h0"), next, at(2)); err == nil {
					wins <- next
				}
			})
		}
		wg.Wait()
		close(wins)
		var won [][]byte
		for w := range wins {
			won = append(won, w)
		}
		if len(won) != 1 {
			t.Fatalf("%d of %d rotations from the same hash succeeded, want 1", len(won), racers)
		}
		if got, _ := s.Session(ctx, v.ID); string(got.RefreshHash) != string(won[0]) {
			t.Errorf("stored hash %q, want the winner's %q", got.RefreshHash, won[0])
		}
	}},
}
