package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/natter-chat/natter/services/search/wire"
)

// randomScopes is a member's view of some of convs: one to three membership intervals in each,
// the last one open (still a member) half the time.
func randomScopes(rng *rand.Rand, convs []string, lastSeq uint64) []wire.Scope {
	var out []wire.Scope
	for _, c := range convs {
		if rng.IntN(2) == 0 {
			continue
		}
		cuts := make([]uint64, 0, 6)
		for range 2 * (1 + rng.IntN(3)) {
			cuts = append(cuts, rng.Uint64N(lastSeq+10))
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		for i := 0; i+1 < len(cuts); i += 2 {
			s := wire.Scope{ConversationID: c, After: cuts[i], UpTo: cuts[i+1]}
			if i+2 >= len(cuts)-1 && rng.IntN(2) == 0 {
				s.UpTo = 0
			}
			out = append(out, s)
			if s.UpTo == 0 {
				break
			}
		}
	}
	return out
}

// TestScopeFilterMatchesBruteForce: random members, each with several membership intervals in
// several conversations, search random words below a random before, walking every page; what
// they find is exactly what a scan of the messages with the scope rule (wire.Scope.Contains)
// finds, in order, each once; and each first page is what the format 1 index (seq range terms)
// answers to the same query.
func TestScopeFilterMatchesBruteForce(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 2026))
	words := []string{"apple", "river", "stone", "cloud", "green", "lamp"}
	convs := []string{"a", "b", "c", "d"}
	const n = 600
	idx := openTestIndex(t)
	old, err := newFormat1(t.TempDir() + "/format1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = old.Close() })
	docs := make([]Doc, 0, n)
	for seq := uint64(1); seq <= n; seq++ {
		if rng.IntN(5) == 0 {
			continue // a seq of another kind of event
		}
		var text []string
		for range 1 + rng.IntN(6) {
			text = append(text, words[rng.IntN(len(words))])
		}
		docs = append(docs, Doc{ConversationID: convs[rng.IntN(len(convs))], Seq: seq, MessageID: fmt.Sprint("m", seq), Text: strings.Join(text, " ")})
	}
	put(t, idx, docs...)
	if err := applyFormat1(old, docs); err != nil {
		t.Fatal(err)
	}
	for member := range 60 {
		scopes := randomScopes(rng, convs, n)
		for range 4 {
			q := wire.Query{Text: words[rng.IntN(len(words))], Scopes: scopes, Limit: 1 + rng.IntN(40)}
			if rng.IntN(2) == 0 {
				q.Before = 1 + rng.Uint64N(n+10)
			}
			want := []uint64{}
			for _, d := range docs {
				in := slices.ContainsFunc(scopes, func(s wire.Scope) bool { return s.ConversationID == d.ConversationID && s.Contains(d.Seq) })
				if in && (q.Before == 0 || d.Seq < q.Before) && slices.Contains(strings.Fields(d.Text), q.Text) {
					want = append(want, d.Seq)
				}
			}
			var got []uint64
			var last *wire.Hit
			for page := 0; ; page++ {
				res, err := idx.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if page == 0 {
					old, err := searchFormat1(ctx, old, q)
					if err != nil {
						t.Fatal(err)
					}
					if mine := hitSeqs(res.Hits); !slices.Equal(mine, old) {
						t.Fatalf("member %d %+v: first page %v, format 1 answers %v", member, q, mine, old)
					}
				}
				for i, h := range res.Hits {
					if last != nil && (h.Score > last.Score || h.Score == last.Score && h.Seq >= last.Seq) {
						t.Fatalf("member %d %+v: %+v after %+v", member, q, h, *last)
					}
					last = &res.Hits[i]
					got = append(got, h.Seq)
				}
				if res.NextCursor == "" {
					break
				}
				if len(res.Hits) != q.Limit {
					t.Fatalf("member %d %+v: a page of %d hits before the last", member, q, len(res.Hits))
				}
				q.Cursor = res.NextCursor
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("member %d %+v found %v, want %v", member, q, got, want)
			}
		}
	}
}

func hitSeqs(hits []wire.Hit) []uint64 {
	out := []uint64{}
	for _, h := range hits {
		out = append(out, h.Seq)
	}
	return out
}
