package search

import (
	"fmt"
	"html"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/registry"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/highlight"
	htmlhl "github.com/blevesearch/bleve/v2/search/highlight/highlighter/html"
)

// snippetRunes is the length of the snippet of a hit without highlighted fragments.
const snippetRunes = 200

// marker makes the snippets of hits. The index keeps no term vectors (indexFormat 3), so it
// cannot say where a hit's terms are: marker finds them again by analysing the stored text as
// indexing did, and hands their places to Bleve's HTML highlighter, which picks and formats the
// fragment as it would from term vectors. A page of hits costs one analysis of each hit's text
// (about 20 µs for a message of 100 characters), indexing saves the term vectors of every message.
type marker struct {
	analyzer    analysis.Analyzer
	highlighter highlight.Highlighter
}

// newMarker marks what analyzer finds: the analyzer of the text field.
func newMarker(analyzer analysis.Analyzer) (marker, error) {
	h, err := registry.NewCache().HighlighterNamed(htmlhl.Name)
	if err != nil {
		return marker{}, fmt.Errorf("search index: highlighter: %w", err)
	}
	return marker{analyzer: analyzer, highlighter: h}, nil
}

// terms is the set of terms the query text is made of, analysed as the text query analyses it.
func (m marker) terms(text string) map[string]bool {
	out := map[string]bool{}
	for _, t := range m.analyzer.Analyze([]byte(text)) {
		out[string(t.Term)] = true
	}
	return out
}

// snippet is text around the places of terms, escaped, each place in <mark>…</mark>; text's start
// when none of terms is in it.
func (m marker) snippet(text string, terms map[string]bool) string {
	places := search.TermLocationMap{}
	for _, t := range m.analyzer.Analyze([]byte(text)) {
		if term := string(t.Term); terms[term] {
			places[term] = append(places[term], &search.Location{Pos: uint64(t.Position), Start: uint64(t.Start), End: uint64(t.End)})
		}
	}
	if len(places) > 0 {
		doc := document.NewDocument("")
		doc.AddField(document.NewTextField(fText, []uint64{}, []byte(text)))
		match := &search.DocumentMatch{Locations: search.FieldTermLocationMap{fText: places}}
		if s := m.highlighter.BestFragmentInField(match, doc, fText); s != "" {
			return s
		}
	}
	runes := []rune(text)
	if len(runes) > snippetRunes {
		return html.EscapeString(string(runes[:snippetRunes])) + "…"
	}
	return html.EscapeString(text)
}
