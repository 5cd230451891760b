package search

import (
	"hash/maphash"
	"slices"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/custom" // the "custom" analyzer type
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"          // cjk_width, cjk_bigram
	"github.com/blevesearch/bleve/v2/analysis/lang/en"           // possessive_en, stemmer_en_snowball
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"   // to_lower
	bleveunicode "github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/registry"
)

// Analysis of message text, one analyzer for every language a conversation mixes:
//
//   - words are split by Unicode word boundaries (UAX #29);
//   - CJK is indexed as overlapping bigrams of characters (the cjk_bigram filter), and so is
//     Hangul, which the word splitter leaves as whole words: 안녕하세요 is indexed as 안녕, 녕하,
//     하세, 세요, so that 안녕 finds it;
//   - English is lower-cased, possessives dropped and stemmed (Snowball): "running" finds "runs";
//   - emoji, which the word splitter drops, are kept one symbol a token (skin tones and joiners
//     left out), so 👍 finds 👍🏽.
const (
	analyzerName  = "natter_text"
	tokenizerName = "natter_words_and_emoji"
	hangulName    = "natter_hangul_as_cjk"
)

func init() {
	must(registry.RegisterTokenizer(tokenizerName, func(map[string]any, *registry.Cache) (analysis.Tokenizer, error) {
		return wordsAndEmoji{words: bleveunicode.NewUnicodeTokenizer()}, nil
	}))
	must(registry.RegisterTokenFilter(hangulName, func(map[string]any, *registry.Cache) (analysis.TokenFilter, error) {
		return hangulAsCJK{}, nil
	}))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// addAnalyzer adds the text analyzer to an index mapping.
func addAnalyzer(m *mapping.IndexMappingImpl) error {
	return m.AddCustomAnalyzer(analyzerName, map[string]any{
		"type":      "custom",
		"tokenizer": tokenizerName,
		"token_filters": []any{
			"cjk_width", "to_lower", hangulName, "cjk_bigram", "possessive_en", "stemmer_en_snowball",
		},
	})
}

// wordsAndEmoji is the Unicode word tokenizer plus a token for every emoji symbol.
type wordsAndEmoji struct{ words analysis.Tokenizer }

func (t wordsAndEmoji) Tokenize(input []byte) analysis.TokenStream {
	out := t.words.Tokenize(input)
	added := false
	for i := 0; i < len(input); {
		r, n := utf8.DecodeRune(input[i:])
		if isEmoji(r) {
			out = append(out, &analysis.Token{Term: input[i : i+n], Start: i, End: i + n, Type: analysis.Single})
			added = true
		}
		i += n
	}
	if added {
		slices.SortStableFunc(out, func(a, b *analysis.Token) int { return a.Start - b.Start })
		for i, tok := range out {
			tok.Position = i + 1
		}
	}
	return out
}

// isEmoji: pictographs and other symbols (Unicode category So). Modifiers (skin tones), joiners
// and variation selectors are not symbols of their own.
func isEmoji(r rune) bool {
	return r >= 0x80 && unicode.Is(unicode.So, r)
}

// hangulAsCJK marks words written only in Hangul as ideographic, so that cjk_bigram splits them
// into bigrams as it does Chinese and Japanese.
type hangulAsCJK struct{}

func (hangulAsCJK) Filter(in analysis.TokenStream) analysis.TokenStream {
	for _, tok := range in {
		if tok.Type == analysis.AlphaNumeric && allHangul(tok.Term) {
			tok.Type = analysis.Ideographic
		}
	}
	return in
}

func allHangul(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if !unicode.Is(unicode.Hangul, r) {
			return false
		}
		b = b[n:]
	}
	return true
}

// indexingAnalyzer is a as indexing runs it: the same tokens, cheaper. a's chain, when it is a
// Bleve DefaultAnalyzer, is copied with two of its filters replaced by equivalents:
//
//   - cjk_width followed by to_lower becomes foldWidthLower, which lower-cases an ASCII token
//     in one copy (cjk_width changes no ASCII; it copies every token through a slice of runes);
//   - stemmer_en_snowball becomes a stemCache in front of it: a message's words are mostly ones
//     it has stemmed before (the stemmer was an eighth of search's CPU).
//
// The index's mapping keeps the names of Bleve's filters, so queries analyse as before and an
// index written with either chain is the same index (TestIndexingAnalyzerIsTheMappings).
func indexingAnalyzer(a analysis.Analyzer) analysis.Analyzer {
	da, ok := a.(*analysis.DefaultAnalyzer)
	if !ok {
		return a
	}
	fast := &analysis.DefaultAnalyzer{CharFilters: da.CharFilters, Tokenizer: da.Tokenizer}
	for i := 0; i < len(da.TokenFilters); i++ {
		f := da.TokenFilters[i]
		width, isWidth := f.(*cjk.CJKWidthFilter)
		if isWidth && i+1 < len(da.TokenFilters) {
			if lower, ok := da.TokenFilters[i+1].(*lowercase.LowerCaseFilter); ok {
				fast.TokenFilters = append(fast.TokenFilters, foldWidthLower{width: width, lower: lower})
				i++
				continue
			}
		}
		if stem, ok := f.(*en.EnglishStemmerFilter); ok {
			f = newStemCache(stem)
		}
		fast.TokenFilters = append(fast.TokenFilters, f)
	}
	return fast
}

// foldWidthLower is cjk_width then to_lower. An ASCII token is lower-cased into a copy, as the
// two make one (the copy matters: a tokenizer's terms are slices of the field's value, which
// the index also stores, and to_lower writes in place); any other goes through both.
type foldWidthLower struct {
	width *cjk.CJKWidthFilter
	lower *lowercase.LowerCaseFilter
}

func (f foldWidthLower) Filter(in analysis.TokenStream) analysis.TokenStream {
	var one [1]*analysis.Token
	for _, tok := range in {
		if lowered, ok := lowerASCII(tok.Term); ok {
			tok.Term = lowered
			continue
		}
		one[0] = tok
		f.lower.Filter(f.width.Filter(one[:]))
	}
	return in
}

// lowerASCII returns a lower-cased copy of b if b is ASCII.
func lowerASCII(b []byte) ([]byte, bool) {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return nil, false
		}
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out, true
}

// stemCache remembers the stems of the terms its stemmer stemmed, in a fixed number of slots
// (a term's hash picks its slot; a new term takes the slot over), safe for Bleve's concurrent
// analysis workers. Terms longer than stemCacheTermMax are stemmed every time.
type stemCache struct {
	stem  analysis.TokenFilter
	seed  maphash.Seed
	slots []atomic.Pointer[stemmed]
}

type stemmed struct{ term, stem string }

const (
	stemCacheSlots   = 1 << 14 // about 1.5 MB when full
	stemCacheTermMax = 24
)

func newStemCache(stem analysis.TokenFilter) *stemCache {
	return &stemCache{stem: stem, seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[stemmed], stemCacheSlots)}
}

func (c *stemCache) Filter(in analysis.TokenStream) analysis.TokenStream {
	var one [1]*analysis.Token
	for _, tok := range in {
		if len(tok.Term) > stemCacheTermMax {
			one[0] = tok
			c.stem.Filter(one[:])
			continue
		}
		slot := &c.slots[maphash.Bytes(c.seed, tok.Term)&uint64(len(c.slots)-1)] // len is a power of two
		if s := slot.Load(); s != nil && s.term == string(tok.Term) {
			tok.Term = []byte(s.stem) // a copy: a token's term is its own
			continue
		}
		term := string(tok.Term)
		one[0] = tok
		c.stem.Filter(one[:])
		slot.Store(&stemmed{term: term, stem: string(tok.Term)})
	}
	return in
}
