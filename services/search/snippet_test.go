package search

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/natter-chat/natter/services/search/wire"
)

// TestSnippetsAreWhatTermVectorsGave: the snippets the current format makes by analysing each
// hit's stored text are the ones Bleve's highlighter made from the term vectors of format 2, for
// the same documents and queries: words, stems, Korean bigrams, emoji, HTML to escape, several
// matches, and long texts whose fragment is not at their start.
func TestSnippetsAreWhatTermVectorsGave(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	words := vocabulary(rng)[:200] // few words, so that queries match many documents
	extra := []string{"running", "runs", "<b>bold</b>", "a&b", "👍🏽", "👍", "안녕하세요", "会議", "John's", "café", "\"quoted\""}
	var docs []Doc
	for i := range 400 {
		n := 3 + rng.IntN(12)
		if i%10 == 0 {
			n = 60 + rng.IntN(80) // longer than a fragment
		}
		tokens := make([]string, n)
		for j := range tokens {
			if rng.IntN(6) == 0 {
				tokens[j] = extra[rng.IntN(len(extra))]
			} else {
				tokens[j] = words[rng.IntN(len(words))]
			}
		}
		docs = append(docs, Doc{ConversationID: fmt.Sprintf("c%d", i%4), Seq: uint64(i + 1), MessageID: fmt.Sprint("m", i),
			SenderID: "u1", SentAt: int64(i), Text: strings.Join(tokens, " ")})
	}
	old, err := newFormat2(t.TempDir() + "/format2")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = old.Close() }()
	if err := applyFormat2(old, docs); err != nil {
		t.Fatal(err)
	}
	cur, err := OpenBleve(t.TempDir() + "/current")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cur.Close() }()
	put(t, cur, docs...)

	marked, elided := 0, 0
	for range 200 {
		tokens := strings.Fields(docs[rng.IntN(len(docs))].Text)
		text := tokens[rng.IntN(len(tokens))]
		if rng.IntN(3) == 0 {
			text += " " + tokens[rng.IntN(len(tokens))]
		}
		q := wire.Query{Text: text, Scopes: all("c0", "c1", "c2", "c3"), Limit: 50}
		want, err := snippetsFormat2(ctx, old, q)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cur.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint64]string{}
		for _, h := range res.Hits {
			got[h.Seq] = h.Snippet
			if strings.Contains(h.Snippet, "<mark>") {
				marked++
			}
			if strings.HasPrefix(h.Snippet, "…") {
				elided++
			}
		}
		if !maps.Equal(got, want) {
			for seq, w := range want {
				if got[seq] != w {
					t.Errorf("%q, seq %d:\n got %q\nwant %q", text, seq, got[seq], w)
				}
			}
			t.Fatalf("%q: %d hits, want %d", text, len(got), len(want))
		}
	}
	if marked < 1000 || elided == 0 {
		t.Fatalf("%d snippets with a match marked, %d not from the text's start: the test did not test", marked, elided)
	}
	t.Logf("%d snippets with marks, %d of them not from the text's start", marked, elided)
}
