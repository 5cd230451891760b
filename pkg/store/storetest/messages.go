package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/natter-chat/natter/pkg/store"
)

// wantMessage fails t unless got is want as stored.
func wantMessage(t *testing.T, got, want store.Message, what string, args ...any) {
	t.Helper()
	if same(got, want) {
		return
	}
	if got.Text != want.Text && (len(got.Text) > 200 || len(want.Text) > 200) {
		t.Errorf("%s: text of %d bytes, want %d bytes", fmt.Sprintf(what, args...), len(got.Text), len(want.Text))
		got.Text, want.Text = "…", "…"
	}
	t.Errorf("%s:\n got %+v\nwant %+v", fmt.Sprintf(what, args...), got, want)
}

// insert inserts m and fails t unless the store answers (want, wantInserted).
func insert(t *testing.T, s store.Store, m, want store.Message, wantInserted bool) {
	t.Helper()
	got, inserted, err := s.InsertMessage(t.Context(), m)
	check(t, err, "insert %s/%d", m.ConversationID, m.Seq)
	if inserted != wantInserted {
		t.Errorf("insert %s/%d: inserted=%v, want %v", m.ConversationID, m.Seq, inserted, wantInserted)
	}
	wantMessage(t, got, want, "insert %s/%d returned", m.ConversationID, m.Seq)
}

// wantPage fails t unless the page of conv is exactly want, newest first.
func wantPage(t *testing.T, s store.Store, conv string, p store.Page, want []store.Message) {
	t.Helper()
	got, err := s.Messages(t.Context(), conv, p)
	check(t, err, "Messages(%s, %+v)", conv, p)
	if !sameAll(got, want) {
		t.Errorf("Messages(%s, %+v): seqs %v, want %v", conv, p, seqs(got), seqs(want))
	}
}

var messagesTests = []test{
	{"IdempotentAtSeq", func(t *testing.T, s store.Store) {
		m := msg("c1", 7, "u-alice", "k1")
		insert(t, s, m, m, true)
		insert(t, s, m, m, false)
		other := msg("c1", 7, "u-bob", "k2") // another message at a taken (conversation, seq)
		insert(t, s, other, m, false)
		wantPage(t, s, "c1", store.Page{}, []store.Message{m})
		_, err := s.MessageByClientID(t.Context(), "u-bob", "k2")
		wantErr(t, err, store.ErrNotFound, "client id of a message not inserted")
		_, err = s.MessageByID(t.Context(), "c1", other.ID)
		wantErr(t, err, store.ErrNotFound, "id of a message not inserted")
	}},
	{"DedupeClientMsgID", func(t *testing.T, s store.Store) {
		first := msg("c1", 10, "u-alice", "k1")
		insert(t, s, first, first, true)
		retry := msg("c1", 12, "u-alice", "k1") // a retry the stream accepted again at a later seq
		retry.Text = "retried"
		insert(t, s, retry, first, false)
		insert(t, s, retry, first, false)
		elsewhere := msg("c10", 13, "u-alice", "k1") // client ids are the sender's, not the conversation's
		insert(t, s, elsewhere, first, false)
		wantPage(t, s, "c1", store.Page{}, []store.Message{first})
		wantPage(t, s, "c10", store.Page{}, nil)
		for _, m := range []store.Message{retry, elsewhere} {
			_, err := s.MessageByID(t.Context(), m.ConversationID, m.ID)
			wantErr(t, err, store.ErrNotFound, "MessageByID of a deduped message")
		}
		got, err := s.MessageByClientID(t.Context(), "u-alice", "k1")
		check(t, err, "by client id")
		wantMessage(t, got, first, "MessageByClientID(u-alice, k1)")
	}},
	{"EmptyClientMsgIDNeverDedupes", func(t *testing.T, s store.Store) {
		a := msg("c1", 20, "u-alice", "")
		b := msg("c1", 21, "u-alice", "")
		ev := msg("c1", 22, "", "")
		ev.Kind, ev.Text, ev.Member = "member", "", []byte(`{"action":"add","users":["u-carol"]}`)
		for _, m := range []store.Message{a, b, ev} {
			insert(t, s, m, m, true)
		}
		wantPage(t, s, "c1", store.Page{}, []store.Message{ev, b, a})
		_, err := s.MessageByClientID(t.Context(), "u-alice", "")
		wantErr(t, err, store.ErrNotFound, "MessageByClientID with an empty client id")
	}},
	{"ClientMsgIDPerSender", func(t *testing.T, s store.Store) {
		a := msg("c1", 30, "u-alice", "same")
		b := msg("c1", 31, "u-bob", "same")
		c := msg("c1", 32, "u-al", "ice/same") // sender + client id concatenations must not collide
		d := msg("c1", 33, "u-alice", "sam")
		for _, m := range []store.Message{a, b, c, d} {
			insert(t, s, m, m, true)
		}
		wantPage(t, s, "c1", store.Page{}, []store.Message{d, c, b, a})
		for _, m := range []store.Message{a, b, c, d} {
			got, err := s.MessageByClientID(t.Context(), m.SenderID, m.ClientMsgID)
			check(t, err, "by client id")
			wantMessage(t, got, m, "MessageByClientID(%s, %s)", m.SenderID, m.ClientMsgID)
		}
	}},
	{"Lookups", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a := msg("c1", 5, "u-alice", "k1")
		b := msg("c10", 6, "u-bob", "k1")
		insert(t, s, a, a, true)
		insert(t, s, b, b, true)
		for _, m := range []store.Message{a, b} {
			got, err := s.MessageByID(ctx, m.ConversationID, m.ID)
			check(t, err, "by id")
			wantMessage(t, got, m, "MessageByID(%s, %s)", m.ConversationID, m.ID)
			got, err = s.MessageByClientID(ctx, m.SenderID, m.ClientMsgID)
			check(t, err, "by client id")
			wantMessage(t, got, m, "MessageByClientID(%s, %s)", m.SenderID, m.ClientMsgID)
		}
		for _, k := range [][2]string{{"c10", a.ID}, {"c1", b.ID}, {"c", a.ID}, {"c1", "01HZZZZZZZZZZZZZZZZZZZZZZZ"}} {
			_, err := s.MessageByID(ctx, k[0], k[1])
			wantErr(t, err, store.ErrNotFound, "MessageByID(%s, %s)", k[0], k[1])
		}
		for _, k := range [][2]string{{"u-alice", "k2"}, {"u-carol", "k1"}, {"u-alic", "k1"}, {"u-alice", "k"}} {
			_, err := s.MessageByClientID(ctx, k[0], k[1])
			wantErr(t, err, store.ErrNotFound, "MessageByClientID(%s, %s)", k[0], k[1])
		}
		wantPage(t, s, "c2", store.Page{}, nil)
	}},
	{"RoundTrip", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		long := longText(100_000)
		if n := utf8.RuneCountInString(long); n != 100_000 {
			t.Fatalf("long text has %d code points", n)
		}
		ms := []store.Message{
			{ConversationID: "c1", Seq: 1 << 40, ID: id("rt1", at(1)), Kind: "msg", SenderID: "u-alice", SenderDevice: "d-1",
				ClientMsgID: "0f8fad5b-d9cb-469f-a165-70867728950e", Text: "héllo 👋🏽 wörld — 家族 👨‍👩‍👧‍👦\n\ttab \x00 nul", SentAt: at(123456)},
			{ConversationID: "c1", Seq: 1<<40 + 1, ID: id("rt2", at(2)), Kind: "member", SenderID: "u-alice", SenderDevice: "d-1",
				Member: []byte(`{"action":"add","users":["u-bob","u-carol"],"name":"Tea"}`), SentAt: at(7)},
			{ConversationID: "c1", Seq: 1<<40 + 2, ID: id("rt3", at(3)), Kind: "msg", SenderID: "u-bob", SenderDevice: "web",
				ClientMsgID: "long", Text: long, SentAt: at(999)},
		}
		for _, m := range ms {
			insert(t, s, m, m, true)
		}
		for _, m := range ms {
			got, err := s.MessageByID(ctx, m.ConversationID, m.ID)
			check(t, err, "by id")
			wantMessage(t, got, m, "MessageByID round trip")
			if m.ClientMsgID != "" {
				got, err := s.MessageByClientID(ctx, m.SenderID, m.ClientMsgID)
				check(t, err, "by client id")
				wantMessage(t, got, m, "MessageByClientID round trip")
			}
		}
		wantPage(t, s, "c1", store.Page{}, []store.Message{ms[2], ms[1], ms[0]})
	}},
}

// longText is n code points of 1-, 2-, 3- and 4-byte UTF-8, with combining marks.
func longText(n int) string {
	parts := []rune("aé€😀\u0301z\U0001F9D1\u200D\U0001F4BB 中")
	var b strings.Builder
	for i := range n {
		b.WriteRune(parts[i%len(parts)])
	}
	return b.String()
}

// sparse are the seqs of a conversation in a stream shared with every other conversation:
// gaps everywhere, runs, and values past 2^32.
var sparse = []uint64{
	2, 7, 19, 20, 21, 1000, 1001, 65535, 65536, 65537, 1000003, 1<<31 - 1, 1 << 31,
	1<<32 - 1, 1 << 32, 1<<32 + 1, 1<<32 + 1000, 1<<33 + 5, 1<<40 - 3, 1 << 40, 1<<40 + 1,
	1<<48 + 77, 1 << 52, 1<<52 + 9,
}

// sparseConv fills c1 with sparse and its neighbours c, c10 and c2 with seqs in between; it
// returns c1's messages oldest first.
func sparseConv(t *testing.T, s store.Store) []store.Message {
	var c1, others []store.Message
	for i, seq := range sparse {
		c1 = append(c1, msg("c1", seq, "u-alice", fmt.Sprintf("k%d", seq)))
		other := []string{"c", "c10", "c2"}[i%3]
		if !slices.Contains(sparse, seq+1) {
			others = append(others, msg(other, seq+1, "u-bob", fmt.Sprintf("o%d", i)))
		}
		others = append(others, msg(other, seq+1<<53, "u-bob", fmt.Sprintf("f%d", i)))
	}
	insertAll(t, s, append(others, c1...))
	return c1
}

// model answers a page from the full list of a conversation's messages, oldest first.
func model(all []store.Message, p store.Page) []store.Message {
	if p.Limit == 0 {
		p.Limit = store.DefaultPageLimit
	}
	var sel []store.Message
	for _, m := range all {
		if (p.Before == 0 || m.Seq < p.Before) && m.Seq > p.After {
			sel = append(sel, m)
		}
	}
	if p.Forward() {
		sel = sel[:min(len(sel), p.Limit)]
	} else {
		sel = sel[max(0, len(sel)-p.Limit):]
	}
	slices.Reverse(sel)
	return sel
}

// around answers store.Around from the full list, oldest first.
func around(all []store.Message, seq uint64, limit int) []store.Message {
	if limit == 0 {
		limit = store.DefaultPageLimit
	}
	var older, newer []store.Message
	for _, m := range all {
		if m.Seq <= seq {
			older = append(older, m)
		} else if len(newer) < limit/2 {
			newer = append(newer, m)
		}
	}
	older = older[max(0, len(older)-(limit+1)/2):]
	out := append(slices.Clone(older), newer...)
	slices.Reverse(out)
	return out
}

var pagesTests = []test{
	{"NewestBeforeAfter", func(t *testing.T, s store.Store) {
		c1 := sparseConv(t, s)
		bounds := []uint64{1, 2, 3, 7, 8, 20, 21, 22, 1000, 65536, 65537, 1<<32 - 1, 1 << 32, 1<<32 + 1,
			1<<40 + 1, 1<<52 + 9, 1<<52 + 10, 1 << 62}
		pages := []store.Page{{}, {Limit: 1}, {Limit: 2}, {Limit: len(c1) - 1}, {Limit: len(c1)}, {Limit: store.MaxPageLimit}}
		for _, b := range bounds {
			for _, l := range []int{0, 1, 3, 10} {
				pages = append(pages, store.Page{Before: b, Limit: l}, store.Page{After: b, Limit: l}, store.Page{After: b, Oldest: true, Limit: l})
			}
		}
		// Oldest with After 0: the conversation read from its very start.
		for _, l := range []int{0, 1, 2, len(c1) - 1, len(c1), store.MaxPageLimit} {
			pages = append(pages, store.Page{Oldest: true, Limit: l})
		}
		for _, p := range pages {
			wantPage(t, s, "c1", p, model(c1, p))
		}
		wantPage(t, s, "c3", store.Page{}, nil)
	}},
	{"Limits", func(t *testing.T, s store.Store) {
		var all []store.Message
		for i := range 230 {
			all = append(all, msg("c1", uint64(1000+i*3), "u-alice", ""))
		}
		insertAll(t, s, all)
		for _, p := range []store.Page{{}, {Limit: store.MaxPageLimit}, {Before: 1500}, {After: 1001}, {After: 1001, Limit: store.MaxPageLimit}} {
			want := model(all, p)
			if p.Limit == 0 && len(want) != store.DefaultPageLimit || p.Limit == store.MaxPageLimit && len(want) != store.MaxPageLimit {
				t.Fatalf("bad test: model page %+v has %d messages", p, len(want))
			}
			wantPage(t, s, "c1", p, want)
		}
		for _, p := range []store.Page{
			{Limit: store.MaxPageLimit + 1}, {Limit: -1}, {Before: 5, After: 1}, {Before: 5, Oldest: true}, {Before: 2000, After: 1000, Limit: 10},
		} {
			_, err := s.Messages(t.Context(), "c1", p)
			wantErr(t, err, store.ErrBadPage, "Messages(%+v)", p)
		}
	}},
	{"Around", func(t *testing.T, s store.Store) {
		c1 := sparseConv(t, s)
		n := len(c1)
		var targets []uint64
		for _, i := range []int{0, 1, n / 2, n - 2, n - 1} {
			targets = append(targets, c1[i].Seq)
		}
		targets = append(targets, 1, 8, 1<<32+2, 1<<60) // between, before and after the messages
		for _, seq := range targets {
			for _, limit := range []int{0, 1, 2, 3, 4, 5, 6, 7, 30} {
				got, err := store.Around(t.Context(), s, "c1", seq, limit)
				check(t, err, "Around(%d, %d)", seq, limit)
				if want := around(c1, seq, limit); !sameAll(got, want) {
					t.Errorf("Around(%d, %d): seqs %v, want %v", seq, limit, seqs(got), seqs(want))
				}
			}
		}
	}},
	{"BucketBoundaries", func(t *testing.T, s store.Store) {
		// 3,000 messages from just under 2^32 to far past it: a step of ~397 crosses a boundary
		// of 1,000-seq buckets every two or three messages and of 2^16-seq buckets every ~165;
		// one jump of 2^34 in the middle leaves millions of empty 2^16 buckets. Other
		// conversations take seqs in between, as they do in the CHAT stream.
		const n = 3000
		var c1, others []store.Message
		for i := range uint64(n) {
			seq := 1<<32 - 600_000 + i*397 + (i*i)%13
			if i >= n/2 {
				seq += 1 << 34
			}
			c1 = append(c1, msg("c1", seq, "u-alice", fmt.Sprintf("k%d", i)))
			if i%3 == 0 {
				others = append(others, msg([]string{"c10", "c"}[i%2], seq+1, "u-bob", ""))
			}
		}
		insertAll(t, s, append(others, c1...))

		// All the way back with Before, all the way forward with After, in pages of a size that
		// never lines up with a bucket.
		const limit = 97
		var back []store.Message
		for p := (store.Page{Limit: limit}); ; {
			page, err := s.Messages(t.Context(), "c1", p)
			check(t, err, "Messages(%+v)", p)
			if !sameAll(page, model(c1, p)) {
				t.Fatalf("Messages(%+v): seqs %v, want %v", p, seqs(page), seqs(model(c1, p)))
			}
			if len(page) == 0 {
				break
			}
			back = append(back, page...)
			p.Before = page[len(page)-1].Seq
		}
		slices.Reverse(back)
		if !sameAll(back, c1) {
			t.Errorf("paging back with Before: %d messages, want all %d once, in order", len(back), n)
		}
		var fwd []store.Message
		for p := (store.Page{After: 1, Limit: limit}); ; {
			page, err := s.Messages(t.Context(), "c1", p)
			check(t, err, "Messages(%+v)", p)
			if !sameAll(page, model(c1, p)) {
				t.Fatalf("Messages(%+v): seqs %v, want %v", p, seqs(page), seqs(model(c1, p)))
			}
			if len(page) == 0 {
				break
			}
			slices.Reverse(page)
			fwd = append(fwd, page...)
			p.After = page[len(page)-1].Seq
		}
		if !sameAll(fwd, c1) {
			t.Errorf("paging forward with After: %d messages, want all %d once, in order", len(fwd), n)
		}

		// Pages of every size from random points, including points inside gaps.
		rng := rand.New(rand.NewPCG(1, 2))
		for range 60 {
			m := c1[rng.IntN(n)]
			b := m.Seq + uint64(rng.IntN(3)) // on a message, or in the gap after it
			p := store.Page{Limit: 1 + rng.IntN(store.MaxPageLimit)}
			if rng.IntN(2) == 0 {
				p.Before = b
			} else {
				p.After = b
			}
			wantPage(t, s, "c1", p, model(c1, p))
		}
		for _, seq := range []uint64{c1[0].Seq, c1[n/2-1].Seq, c1[n/2].Seq, c1[n/2].Seq - 1, c1[n-1].Seq} {
			got, err := store.Around(t.Context(), s, "c1", seq, 101)
			check(t, err, "Around(%d)", seq)
			if want := around(c1, seq, 101); !sameAll(got, want) {
				t.Errorf("Around(%d, 101): seqs %v, want %v", seq, seqs(got), seqs(want))
			}
		}
	}},
}
