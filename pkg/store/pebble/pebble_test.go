package pebble

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// reopen closes s and opens the store in dir again, to be closed when the test ends.
func reopen(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{ID: "u1", Handle: "alice", DisplayName: "Alice", PasswordHash: []byte("h"), CreatedAt: time.UnixMilli(1700000000123).UTC()}
	c := store.Conversation{ID: "c1", Kind: store.Group, Name: "g", CreatedBy: "u1", CreatedAt: u.CreatedAt}
	mem := store.Member{ConversationID: "c1", UserID: "u1", Role: "owner", JoinedAt: u.CreatedAt}
	msg := store.Message{ConversationID: "c1", Seq: 1 << 33, ID: "01HX", Kind: "msg", SenderID: "u1", ClientMsgID: "k", Text: "hi", SentAt: u.CreatedAt}
	dev := store.Device{UserID: "u1", DeviceID: "d", Platform: "web", CreatedAt: u.CreatedAt, LastSeen: u.CreatedAt}
	tok := store.PushToken{UserID: "u1", DeviceID: "d", Platform: "fcm", Token: "t", UpdatedAt: u.CreatedAt}
	wm := store.Watermark{ConversationID: "c1", UserID: "u1", Delivered: 1 << 33, Read: 5}
	for _, err := range []error{
		s.CreateUser(ctx, u), s.PutConversation(ctx, c), s.PutMember(ctx, mem),
		s.PutDevice(ctx, dev), s.PutPushToken(ctx, tok),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.InsertMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceWatermark(ctx, wm); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir)
	got := fmt.Sprint(
		must(s.UserByHandle(ctx, "alice")), must(s.Conversation(ctx, "c1")), must(s.Members(ctx, "c1")),
		must(s.MembershipsOf(ctx, "u1")), must(s.MessageByClientID(ctx, "u1", "k")), must(s.MessageByID(ctx, "c1", "01HX")),
		must(s.Messages(ctx, "c1", store.Page{})), must(s.Devices(ctx, "u1")), must(s.PushTokens(ctx, "u1")),
		must(s.Watermark(ctx, "c1", "u1")))
	want := fmt.Sprint(u, c, []store.Member{mem}, []store.Member{mem}, msg, msg, []store.Message{msg},
		[]store.Device{dev}, []store.PushToken{tok}, wm)
	if got != want {
		t.Errorf("after reopen:\n got %s\nwant %s", got, want)
	}
	retry := msg
	retry.Seq++
	if stored, inserted, err := s.InsertMessage(ctx, retry); err != nil || inserted || stored.Seq != msg.Seq {
		t.Errorf("retry after reopen: stored at %d, inserted=%v, %v; want the message at %d", stored.Seq, inserted, err, msg.Seq)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := uint64(1); ; i++ {
				_, _, err := s.InsertMessage(ctx, store.Message{ConversationID: "c", Seq: uint64(g)<<32 + i})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	var cwg sync.WaitGroup
	for range 3 {
		cwg.Go(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	cwg.Wait()
	wg.Wait()
	if _, err := s.UserByID(ctx, "u"); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestRejects(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	if _, _, err := s.InsertMessage(ctx, store.Message{ConversationID: "c"}); err == nil {
		t.Error("seq 0 accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Messages(cctx, "c", store.Page{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestExtremeSeqs covers bounds the conformance suite leaves out because ScyllaDB keeps seqs
// in a signed bigint.
func TestExtremeSeqs(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	var want []store.Message
	for _, seq := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 1 << 63, 1} {
		m := store.Message{ConversationID: "c", Seq: seq, ID: fmt.Sprint(seq), Kind: "msg", SentAt: time.UnixMilli(0).UTC()}
		if _, _, err := s.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	for p, n := range map[store.Page]int{
		{}: 4, {After: math.MaxUint64}: 0, {After: math.MaxUint64 - 1}: 1, {Before: math.MaxUint64}: 3,
		{After: 1 << 63}: 2, {Before: 1}: 0, {Before: 2}: 1,
	} {
		got, err := s.Messages(ctx, "c", p)
		if err != nil || len(got) != n {
			t.Errorf("Messages(%+v): %d messages, %v; want %d", p, len(got), err, n)
		}
	}
	got, _ := s.Messages(ctx, "c", store.Page{})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("newest page %v, want %v", got, want)
	}
}

func TestKeysNeverCollide(t *testing.T) {
	ids := []string{"", "a", "a\x00", "a\x00\x01", "a\x00\xff", "a\x01", "a/b", "ab", "b", "\xff"}
	seen := map[string]string{}
	for _, x := range ids {
		for _, y := range ids {
			k := string(key(tagMem, x, y))
			if prev, ok := seen[k]; ok {
				t.Errorf("key(%q, %q) = key(%s)", x, y, prev)
			}
			seen[k] = fmt.Sprintf("%q, %q", x, y)
			// A scan of x's records finds only x's.
			p := key(tagMem, x)
			for _, z := range ids {
				inside := strings.HasPrefix(string(key(tagMem, z, y)), string(p))
				if inside != (z == x) {
					t.Errorf("key(%q, %q) inside the scan of %q: %v", z, y, x, inside)
				}
			}
		}
	}
	// Byte order of keys is the order of their first component.
	for _, x := range ids {
		for _, y := range ids {
			if (x < y) != (string(key(tagMem, x, "z")) < string(key(tagMem, y, ""))) {
				t.Errorf("order of %q and %q not kept", x, y)
			}
		}
	}
}

// FuzzDecode feeds every value decoder arbitrary bytes: none may panic, and whatever one
// accepts must survive encoding and decoding again unchanged.
func FuzzDecode(f *testing.F) {
	f.Add(encodeMessage(store.Message{ConversationID: "c", Seq: 9, Text: "hi", Member: []byte("{}"), SentAt: time.UnixMilli(5)}))
	f.Add(encodeMessage(store.Message{ConversationID: "c", Seq: 9, Kind: "msg", Text: "hi", SentAt: time.UnixMilli(5),
		EditedAt: time.UnixMilli(7), DeletedAt: time.UnixMilli(8), HiddenFor: []string{"u1", "u2"}, RevisedSeq: 10}))
	f.Add(encodeMessage(store.Message{ConversationID: "c", Seq: 10, Kind: "edit", Target: 9, TargetID: "m9", SentAt: time.UnixMilli(7)}))
	f.Add(encodeUser(store.User{ID: "u", Handle: "h", PasswordHash: []byte{0}, CreatedAt: time.UnixMilli(-5)}))
	f.Add(encodeWatermark(store.Watermark{ConversationID: "c", UserID: "u", Delivered: math.MaxUint64, Read: 1}))
	f.Add(encodeRef("c", 1<<40))
	f.Add([]byte{valueV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, b, decodeMessage, encodeMessage)
		roundTrip(t, b, decodeUser, encodeUser)
		roundTrip(t, b, decodeConversation, encodeConversation)
		roundTrip(t, b, decodeMember, encodeMember)
		roundTrip(t, b, decodeDevice, encodeDevice)
		roundTrip(t, b, decodePushToken, encodePushToken)
		roundTrip(t, b, decodeWatermark, encodeWatermark)
		_, _, _ = decodeRef(b)
	})
}

func roundTrip[T any](t *testing.T, b []byte, decode func([]byte) (T, error), encode func(T) []byte) {
	v, err := decode(b)
	if err != nil {
		return
	}
	if v2, err := decode(encode(v)); err != nil || fmt.Sprint(v2) != fmt.Sprint(v) {
		t.Fatalf("re-encoding %+v gives %+v, %v", v, v2, err)
	}
}

// The benchmarks report the store against a raw pebble baseline measured in the same run:
// compare the ratio, not the wall-clock figure, which is mostly the disk's fsync.

func BenchmarkInsertMessage(b *testing.B) {
	text := strings.Repeat("x", 100)
	b.Run("store", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		for i := range b.N {
			m := store.Message{ConversationID: "c1", Seq: uint64(i + 1), ID: fmt.Sprint(i), Kind: "msg", SenderID: "u1",
				ClientMsgID: fmt.Sprint("k", i), Text: text, SentAt: time.Now()}
			if _, _, err := s.InsertMessage(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The persister's workers write in parallel; synced commits of concurrent writers share a
	// WAL sync, so throughput grows with the writers in flight (writers = GOMAXPROCS × p).
	for _, p := range []int{4, 16, 32} {
		b.Run(fmt.Sprintf("store-parallel-%d", p), func(b *testing.B) { benchParallelInsert(b, p, text) })
	}
	b.Run("baseline=pebble-sync-set", func(b *testing.B) {
		db := openRaw(b)
		v := []byte(text)
		for i := range b.N {
			if err := db.Set(msgKey("c1", uint64(i+1)), v, pebble.Sync); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchParallelInsert(b *testing.B, parallelism int, text string) {
	s := open(b)
	ctx := context.Background()
	var next atomic.Uint64
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			seq := next.Add(1)
			m := store.Message{ConversationID: fmt.Sprint("c", seq%16), Seq: seq, ID: fmt.Sprint(seq), Kind: "msg",
				SenderID: "u1", ClientMsgID: fmt.Sprint("k", seq), Text: text, SentAt: time.Now()}
			if _, _, err := s.InsertMessage(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPageNewest(b *testing.B) {
	text := strings.Repeat("x", 100)
	b.Run("store", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		for c := range 4 {
			for i := range 5000 {
				m := store.Message{ConversationID: fmt.Sprint("c", c), Seq: uint64(i*4 + c + 1), ID: fmt.Sprint(i), Kind: "msg",
					SenderID: "u1", Text: text, SentAt: time.Now()}
				if _, _, err := s.InsertMessage(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ResetTimer()
		for range b.N {
			page, err := s.Messages(ctx, "c1", store.Page{})
			if err != nil || len(page) != store.DefaultPageLimit {
				b.Fatal(len(page), err)
			}
		}
	})
	b.Run("baseline=pebble-reverse-scan", func(b *testing.B) {
		db := openRaw(b)
		v := []byte(text)
		for c := range 4 {
			batch := db.NewBatch()
			for i := range 5000 {
				_ = batch.Set(msgKey(fmt.Sprint("c", c), uint64(i*4+c+1)), v, nil)
			}
			if err := batch.Commit(pebble.Sync); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for range b.N {
			prefix := key(tagMsg, "c1")
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for ok := it.Last(); ok && n < store.DefaultPageLimit; ok = it.Prev() {
				_ = append([]byte(nil), it.Value()...)
				n++
			}
			if err := it.Close(); err != nil || n != store.DefaultPageLimit {
				b.Fatal(n, err)
			}
		}
	})
}

func openRaw(b *testing.B) *pebble.DB {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: pebbleLogger{}, FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
