package search

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/blevesearch/bleve/v2/analysis"
)

// mappingsTextAnalyzer is the analyzer the index mapping names for the text field.
func mappingsTextAnalyzer(t testing.TB) analysis.Analyzer {
	t.Helper()
	m, err := indexMapping()
	if err != nil {
		t.Fatal(err)
	}
	a := m.AnalyzerNamed(analyzerName)
	if a == nil {
		t.Fatalf("no analyzer %q", analyzerName)
	}
	return a
}

// sameTokens fails t unless fast makes of text exactly the tokens slow makes, and leaves text
// as it was.
func sameTokens(t testing.TB, slow, fast analysis.Analyzer, text string) {
	t.Helper()
	in := []byte(text)
	got := fast.Analyze(in)
	if string(in) != text {
		t.Fatalf("%q: the indexing analyzer changed its input to %q", text, in)
	}
	want := slow.Analyze([]byte(text))
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %v\nwant %v", text, got, want)
	}
}

// pieces of text that each filter of the chain treats apart: case, possessives, the Greek final
// sigma, fullwidth ASCII and halfwidth katakana (cjk_width), Hangul and CJK (bigrams), emoji,
// long words, digits, punctuation.
var pieces = []string{"Running", "runs", "RUN", "the", "café's", "John's", "JOHN’S", "Ｈｅｌｌｏ", "ｶﾞｷﾞ", "ﾊﾟﾊﾟ",
	"ΟΔΟΣ", "Σίσυφος", "안녕하세요", "会議室", "東京", "👍🏽", "🏃🏽‍♂️", "generalizations", "internationalization's",
	"supercalifragilisticexpialidocious", "2024", "v1.2", "e-mail", "<b>&</b>", "İstanbul", "STRASSE", "ß", "Ǆemal"}

// TestIndexingAnalyzerIsTheMappings: the chain indexing runs makes the tokens of the mapping's
// chain — the same terms, places and types — for texts made of pieces every filter treats
// apart, the second time from its stem cache, and from several goroutines at once.
func TestIndexingAnalyzerIsTheMappings(t *testing.T) {
	slow := mappingsTextAnalyzer(t)
	fast := indexingAnalyzer(slow)
	if reflect.DeepEqual(fast, slow) {
		t.Fatal("the indexing analyzer replaced nothing")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	texts := make([]string, 2000)
	for i := range texts {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			p := pieces[rng.IntN(len(pieces))]
			switch rng.IntN(3) {
			case 0:
				p = strings.ToUpper(p)
			case 1:
				p = fmt.Sprintf("%s%d", p, rng.IntN(100))
			}
			b.WriteString(p)
			b.WriteString([]string{" ", ", ", "", "\n", "・"}[rng.IntN(5)])
		}
		texts[i] = b.String()
	}
	for range 2 {
		for _, text := range texts {
			sameTokens(t, slow, fast, text)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(texts); i += 4 {
				sameTokens(t, slow, fast, texts[i])
			}
		})
	}
	wg.Wait()
}

// TestStemCacheTakesASlotOver: two terms of one slot are each stemmed right, in turn.
func TestStemCacheTakesASlotOver(t *testing.T) {
	slow := mappingsTextAnalyzer(t)
	fast := indexingAnalyzer(slow)
	for _, f := range fast.(*analysis.DefaultAnalyzer).TokenFilters {
		if c, ok := f.(*stemCache); ok {
			c.slots = c.slots[:1] // every term in slot 0
		}
	}
	for range 3 {
		for _, text := range []string{"running", "generalizations", "runs", "running"} {
			sameTokens(t, slow, fast, text)
		}
	}
}

func FuzzIndexingAnalyzer(f *testing.F) {
	for _, p := range pieces {
		f.Add(p + " " + strings.ToUpper(p))
	}
	slow := mappingsTextAnalyzer(f)
	fast := indexingAnalyzer(slow)
	f.Fuzz(func(t *testing.T, text string) {
		sameTokens(t, slow, fast, text)
		sameTokens(t, slow, fast, text) // from the cache
	})
}
