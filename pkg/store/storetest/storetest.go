// Package storetest is the conformance suite every store.Store implementation passes.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := pebble.Open(t.TempDir(), pebble.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite checks the contract written in package store, including the parts that are easy to
// get subtly wrong in a wide-column or key-value layout: sparse, global, 64-bit seqs; paging
// across bucket boundaries; ids that are prefixes of each other; dedupe under concurrency;
// and replaying every write in another order.
//
// Where the contract is silent the suite expects what a caller would:
//   - times come back at millisecond precision (truncated), as ScyllaDB keeps them, and the
//     message InsertMessage returns is the message as stored, times included;
//   - lists of a conversation or user that does not exist are empty, not ErrNotFound;
//     deleting a device or push token that does not exist succeeds;
//   - Watermark of an unknown pair carries the pair's ids and zero marks;
//   - Devices, PushTokens and Watermarks may come in any order (the suite sorts them);
//   - seqs and page bounds stay below 2^62 (ScyllaDB's bigint is signed);
//   - a replay keeps the order of the writes to one record (a member who joined and left is
//     written in that order) but may reorder everything else.
package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/pkg/store"
)

// Run runs the suite. Every subtest calls open once, with the subtest's t, and uses the store
// it returns alone. open must return a new, empty store and register its own cleanup (with
// t.Cleanup) to close it and remove its data: Run never closes a store. Subtests run one after
// another, never in parallel, so open need not be safe for concurrent use.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Users", usersTests},
		{"Conversations", conversationsTests},
		{"Members", membersTests},
		{"Messages", messagesTests},
		{"Pages", pagesTests},
		{"Devices", devicesTests},
		{"PushTokens", pushTokensTests},
		{"Watermarks", watermarksTests},
		{"Sessions", sessionsTests},
		{"Concurrency", concurrencyTests},
		{"Replay", replayTests},
		{"Revisions", revisionsTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// t0 has sub-millisecond digits on purpose: stores keep milliseconds.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// at is a distinct time for every n below 2^30.
func at(n uint64) time.Time { return t0.Add(time.Duration(n%(1<<30)) * time.Millisecond) }

// ms is what a store keeps of a time.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// id returns a deterministic ULID for name: the same name always gives the same id.
func id(name string, t time.Time) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	var u ulid.ULID
	if err := u.SetTime(ulid.Timestamp(t)); err != nil {
		panic(err)
	}
	var e [10]byte
	binary.BigEndian.PutUint64(e[:], h.Sum64())
	if err := u.SetEntropy(e[:]); err != nil {
		panic(err)
	}
	return u.String()
}

// msg is the text message of conversation conv at seq, sent by sender with client id cmid.
func msg(conv string, seq uint64, sender, cmid string) store.Message {
	return store.Message{
		ConversationID: conv,
		Seq:            seq,
		ID:             id(fmt.Sprintf("%s/%d/%s/%s", conv, seq, sender, cmid), at(seq)),
		Kind:           "msg",
		SenderID:       sender,
		SenderDevice:   sender + "-phone",
		ClientMsgID:    cmid,
		Text:           fmt.Sprintf("%s #%d from %s", conv, seq, sender),
		SentAt:         at(seq),
	}
}

// same reports whether got is want as a store keeps it: times compare with Equal after want is
// truncated to milliseconds, byte slices with bytes.Equal (nil equals empty), interval lists
// with slices.Equal (nil equals empty), the rest with ==.
// T must be a struct of exported fields.
func same[T any](got, want T) bool {
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		switch wf := w.Field(i).Interface().(type) {
		case time.Time:
			if !g.Field(i).Interface().(time.Time).Equal(ms(wf)) {
				return false
			}
		case []byte:
			if !bytes.Equal(g.Field(i).Bytes(), wf) {
				return false
			}
		case []string:
			if !slices.Equal(g.Field(i).Interface().([]string), wf) {
				return false
			}
		case []store.Interval:
			if !slices.Equal(g.Field(i).Interface().([]store.Interval), wf) {
				return false
			}
		default:
			if g.Field(i).Interface() != wf {
				return false
			}
		}
	}
	return true
}

func sameAll[T any](got, want []T) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !same(got[i], want[i]) {
			return false
		}
	}
	return true
}

// check fails t now if err is not nil.
func check(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// wantErr fails t if err does not wrap target.
func wantErr(t *testing.T, err, target error, what string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", fmt.Sprintf(what, args...), err, target)
	}
}

// seqs returns the seqs of ms in order.
func seqs(ms []store.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// insertAll inserts msgs with a few goroutines (order does not matter to a store) and fails t
// unless every one is newly inserted.
func insertAll(t *testing.T, s store.Store, msgs []store.Message) {
	t.Helper()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(msgs); i += workers {
				_, inserted, err := s.InsertMessage(t.Context(), msgs[i])
				if err == nil && !inserted {
					err = errors.New("not inserted")
				}
				if err != nil {
					errs <- fmt.Errorf("insert %s/%d: %w", msgs[i].ConversationID, msgs[i].Seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
