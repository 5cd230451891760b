package search

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/natter-chat/natter/services/search/wire"
)

func openTestIndex(t *testing.T) *Bleve {
	t.Helper()
	idx, err := OpenBleve(t.TempDir() + "/index")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	return idx
}

func put(t *testing.T, idx Index, docs ...Doc) {
	t.Helper()
	if err := idx.Apply(context.Background(), docs, nil); err != nil {
		t.Fatal(err)
	}
}

func all(conv ...string) []wire.Scope {
	var s []wire.Scope
	for _, c := range conv {
		s = append(s, wire.Scope{ConversationID: c})
	}
	return s
}

// seqs runs q and returns the seqs found, in order.
func seqs(t *testing.T, idx Index, q wire.Query) []uint64 {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = wire.MaxLimit
	}
	res, err := idx.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	out := []uint64{}
	for _, h := range res.Hits {
		out = append(out, h.Seq)
	}
	return out
}

func TestAnalysisFindsKoreanEnglishAndEmoji(t *testing.T) {
	idx := openTestIndex(t)
	put(t, idx,
		Doc{ConversationID: "c", Seq: 1, MessageID: "m1", Text: "안녕하세요 여러분"},
		Doc{ConversationID: "c", Seq: 2, MessageID: "m2", Text: "The dogs were running in the park"},
		Doc{ConversationID: "c", Seq: 3, MessageID: "m3", Text: "party time 🎉 see you 👍🏽"},
		Doc{ConversationID: "c", Seq: 4, MessageID: "m4", Text: "東京タワーに行きました"},
		Doc{ConversationID: "c", Seq: 5, MessageID: "m5", Text: "a dog runs"},
	)
	for _, tc := range []struct {
		q    string
		want []uint64
	}{
		{"안녕", []uint64{1}},
		{"안녕하세요", []uint64{1}},
		{"여러분", []uint64{1}},
		{"세요", []uint64{1}},
		{"dog", []uint64{5, 2}},     // stemmed: dogs, dog
		{"run", []uint64{5, 2}},     // running, runs
		{"RUNNING", []uint64{5, 2}}, // case
		{"dogs park", []uint64{2}},  // every term must match
		{"🎉", []uint64{3}},
		{"👍", []uint64{3}}, // skin tone ignored
		{"東京", []uint64{4}},
		{"cat", []uint64{}},
		{"안녕 cat", []uint64{}},
	} {
		got := seqs(t, idx, wire.Query{Text: tc.q, Scopes: all("c")})
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q found %v, want %v", tc.q, got, want)
		}
	}
	res, err := idx.Search(context.Background(), wire.Query{Text: "안녕", Scopes: all("c"), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 1 || res.Hits[0].Snippet != "<mark>안녕</mark>하세요 여러분" || res.Hits[0].MessageID != "m1" {
		t.Errorf("hit %+v", res.Hits)
	}
}

func TestScopesAndBefore(t *testing.T) {
	idx := openTestIndex(t)
	for seq := uint64(1); seq <= 10; seq++ {
		put(t, idx, Doc{ConversationID: []string{"a", "b"}[seq%2], Seq: seq, MessageID: fmt.Sprint(seq), Text: "hello"})
	}
	for _, tc := range []struct {
		name   string
		scopes []wire.Scope
		before uint64
		want   []uint64
	}{
		{"whole a", all("a"), 0, []uint64{10, 8, 6, 4, 2}},
		{"a after 4", []wire.Scope{{ConversationID: "a", After: 4}}, 0, []uint64{10, 8, 6}},
		{"a up to 6", []wire.Scope{{ConversationID: "a", UpTo: 6}}, 0, []uint64{6, 4, 2}},
		{"a in (2,8], b in (0,3]", []wire.Scope{{ConversationID: "a", After: 2, UpTo: 8}, {ConversationID: "b", UpTo: 3}}, 0, []uint64{8, 6, 4, 3, 1}},
		{"both before 5", all("a", "b"), 5, []uint64{4, 3, 2, 1}},
		{"before 1", all("a", "b"), 1, []uint64{}},
		{"no scopes", nil, 0, []uint64{}},
		{"unknown conversation", all("z"), 0, []uint64{}},
	} {
		if got := seqs(t, idx, wire.Query{Text: "hello", Scopes: tc.scopes, Before: tc.before}); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v (equal scores: newest first)", tc.name, got, tc.want)
		}
	}
}

func TestRankedThenNewestAndPagedByCursor(t *testing.T) {
	idx := openTestIndex(t)
	var docs []Doc
	for seq := uint64(1); seq <= 25; seq++ {
		text := "just a word among others here"
		if seq%5 == 0 {
			text = "word word word" // ranks higher: more occurrences, shorter
		}
		docs = append(docs, Doc{ConversationID: []string{"a", "b", "c"}[seq%3], Seq: seq, MessageID: fmt.Sprint(seq), Text: text})
	}
	put(t, idx, docs...)
	want := []uint64{25, 20, 15, 10, 5}
	for seq := uint64(24); seq >= 1; seq-- {
		if seq%5 != 0 {
			want = append(want, seq)
		}
	}
	var got []uint64
	q := wire.Query{Text: "word", Scopes: all("a", "b", "c"), Limit: 4}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		res, err := idx.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.Hits {
			got = append(got, h.Seq)
		}
		if res.NextCursor == "" {
			break
		}
		q.Cursor = res.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages gave %v, want %v", got, want)
	}
}

func TestApplyReplacesAndRemoves(t *testing.T) {
	idx := openTestIndex(t)
	put(t, idx, Doc{ConversationID: "c", Seq: 1, Text: "first draft"}, Doc{ConversationID: "c", Seq: 2, Text: "other"})
	put(t, idx, Doc{ConversationID: "c", Seq: 1, Text: "first draft"}) // a redelivery
	put(t, idx, Doc{ConversationID: "c", Seq: 2, Text: "edited"})
	if n, _ := idx.Count(); n != 2 {
		t.Fatalf("%d documents after indexing the same two again", n)
	}
	if got := seqs(t, idx, wire.Query{Text: "other", Scopes: all("c")}); len(got) != 0 {
		t.Errorf("replaced text still found: %v", got)
	}
	if got := seqs(t, idx, wire.Query{Text: "edited", Scopes: all("c")}); !slices.Equal(got, []uint64{2}) {
		t.Errorf("replacement found at %v", got)
	}
	if err := idx.Apply(context.Background(), nil, []string{DocID("c", 1)}); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, idx, wire.Query{Text: "draft", Scopes: all("c")}); len(got) != 0 {
		t.Errorf("removed document found: %v", got)
	}
	if err := idx.Reset(); err != nil {
		t.Fatal(err)
	}
	if n, _ := idx.Count(); n != 0 {
		t.Errorf("%d documents after reset", n)
	}
}

func TestLongMessageIndexesInBoundedMemory(t *testing.T) {
	idx := openTestIndex(t)
	var b strings.Builder
	for utf8.RuneCountInString(b.String()) < 100_000 {
		b.WriteString("가나다라마바사 lorem ipsum dolor sit amet 🎉 ")
	}
	text := []rune(b.String())[:100_000]
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	put(t, idx, Doc{ConversationID: "c", Seq: 1, Text: string(text[:len(text)-6]) + " needle"})
	runtime.ReadMemStats(&after)
	// Analysis, term vectors and the segment of one 100,000-character message: a few tens of MiB
	// at most (9 MiB allocated in total when measured).
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("indexing one 100,000-character message allocated %d MiB", alloc>>20)
	if alloc > 64<<20 {
		t.Errorf("indexing one 100,000-character message allocated %d MiB", alloc>>20)
	}
	res, err := idx.Search(context.Background(), wire.Query{Text: "needle", Scopes: all("c"), Limit: 1})
	if err != nil || len(res.Hits) != 1 || !strings.Contains(res.Hits[0].Snippet, "<mark>needle</mark>") {
		t.Fatalf("needle: %+v, %v", res, err)
	}
	if got := seqs(t, idx, wire.Query{Text: "다라", Scopes: all("c")}); !slices.Equal(got, []uint64{1}) {
		t.Errorf("다라: %v", got)
	}
}

func TestBadCursorIsABadQuery(t *testing.T) {
	idx := openTestIndex(t)
	for _, c := range []string{"x", "1_", "_1", "-1_3", "NaN_3", "1_0", "1.0_3", "1_03", "1_3_4", strings.Repeat("1", 200)} {
		_, err := idx.Search(context.Background(), wire.Query{Text: "a", Scopes: all("c"), Limit: 1, Cursor: c})
		if !errors.Is(err, wire.ErrBadQuery) {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{"1.5_3", "0_1", "", "x_y", "1e308_9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			if !errors.Is(err, wire.ErrBadQuery) {
				t.Fatalf("%q: %v is not a bad query", s, err)
			}
			return
		}
		if c.encode() != s {
			t.Fatalf("%q decoded to %+v, which encodes to %q", s, c, c.encode())
		}
	})
}
