package search

import (
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	_ "github.com/blevesearch/bleve/v2/analysis/analyzer/custom" // the "custom" analyzer type
	_ "github.com/blevesearch/bleve/v2/analysis/lang/cjk"        // cjk_width, cjk_bigram
	_ "github.com/blevesearch/bleve/v2/analysis/lang/en"         // possessive_en, stemmer_en_snowball
	_ "github.com/blevesearch/bleve/v2/analysis/token/lowercase" // to_lower
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
