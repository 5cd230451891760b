package search

import (
	"context"
	"slices"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	htmlhl "github.com/blevesearch/bleve/v2/search/highlight/highlighter/html"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/natter-chat/natter/services/search/wire"
)

// The index as the code before format 3 wrote and queried it (term vectors for the text; id,
// sender and time stored as fields of their own, the conversation stored too): what the
// migration test opens, and what the snippets of format 3 are held to.

func format2Mapping() *mapping.IndexMappingImpl {
	m := bleve.NewIndexMapping()
	must(addAnalyzer(m))
	sent := bleve.NewNumericFieldMapping()
	sent.Index, sent.IncludeInAll, sent.DocValues = false, false, false
	text := bleve.NewTextFieldMapping()
	text.Analyzer, text.IncludeInAll, text.IncludeTermVectors, text.DocValues = analyzerName, false, true, false
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fConv, keywordField(true))
	doc.AddFieldMappingsAt(fID, keywordField(false))
	doc.AddFieldMappingsAt(fSender, keywordField(false))
	doc.AddFieldMappingsAt(fSent, sent)
	doc.AddFieldMappingsAt(fText, text)
	doc.AddFieldMappingsAt(fDeleted, keywordField(false))
	doc.AddSubDocumentMapping("_all", bleve.NewDocumentDisabledMapping())
	m.DefaultMapping = doc
	m.DefaultAnalyzer = analyzerName
	return m
}

func newFormat2(dir string) (bleve.Index, error) {
	idx, err := bleve.New(dir, format2Mapping())
	if err != nil {
		return nil, err
	}
	if err := idx.SetInternal(formatKey, []byte("2")); err != nil {
		_ = idx.Close()
		return nil, err
	}
	return idx, nil
}

// applyFormat2 indexes docs as format 2 did: documents made from the fields themselves
// (IndexAdvanced), as the current format's are, so that the benchmarks compare the formats.
func applyFormat2(idx bleve.Index, docs []Doc) error {
	im := idx.Mapping().(*mapping.IndexMappingImpl)
	options := func(name string) (index.FieldIndexingOptions, analysis.Analyzer) {
		f := im.DefaultMapping.Properties[name].Fields[0]
		return f.Options(), im.AnalyzerNamed(f.Analyzer)
	}
	batch := idx.NewBatch()
	for _, d := range docs {
		doc := document.NewDocument(d.ID())
		add := func(name, value string) {
			o, a := options(name)
			doc.AddField(document.NewTextFieldCustom(name, []uint64{}, []byte(value), o, a))
		}
		add(fConv, d.ConversationID)
		add(fID, d.MessageID)
		if d.Deleted {
			add(fDeleted, "1")
		} else {
			add(fSender, d.SenderID)
			o, _ := options(fSent)
			doc.AddField(document.NewNumericFieldWithIndexingOptions(fSent, []uint64{}, float64(d.SentAt), o))
			add(fText, d.Text)
		}
		doc.SetIndexed()
		if err := batch.IndexAdvanced(doc); err != nil {
			return err
		}
	}
	return idx.Batch(batch)
}

// writeOlderIndex leaves in dir an index of format 1 or 2 holding docs, written as the code of
// that format did, in batches of 2,048.
func writeOlderIndex(dir string, format int, docs []Doc) error {
	create, apply := newFormat1, applyFormat1
	if format == 2 {
		create, apply = newFormat2, applyFormat2
	}
	idx, err := create(dir)
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(docs, 2048) {
		if err := apply(idx, chunk); err != nil {
			_ = idx.Close()
			return err
		}
	}
	return idx.Close()
}

// snippetsFormat2 runs q's first page as format 2 did, with Bleve's highlighter working from the
// term vectors, and returns each hit's snippet by seq.
func snippetsFormat2(ctx context.Context, idx bleve.Index, q wire.Query) (map[uint64]string, error) {
	req := bleve.NewSearchRequestOptions(newScopeFilter(bleveQuery(q), q), q.Limit, 0, false)
	req.SortByCustom(search.SortOrder{&search.SortScore{Desc: true}, &search.SortDocID{Desc: true}})
	req.Fields = []string{fText}
	req.Highlight = bleve.NewHighlightWithStyle(htmlhl.Name)
	req.Highlight.AddField(fText)
	res, err := idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, err
	}
	out := map[uint64]string{}
	for _, h := range res.Hits {
		_, seq, _ := parseDocID(h.ID)
		if frags := h.Fragments[fText]; len(frags) > 0 {
			out[seq] = frags[0]
		} else {
			out[seq] = "(plain) " + str(h.Fields[fText])
		}
	}
	return out, nil
}
