package search

import (
	"context"
	"strconv"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	htmlhl "github.com/blevesearch/bleve/v2/search/highlight/highlighter/html"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/natter-chat/natter/services/search/wire"
)

// The index as the code before format 2 wrote and queried it (seq a numeric field, indexed as 16
// terms, ids <conversation>/<seq>): what the migration test opens, and the "before" of the
// format benchmarks.

func format1Mapping() *mapping.IndexMappingImpl {
	m := bleve.NewIndexMapping()
	must(addAnalyzer(m))
	numberField := func(indexed bool) *mapping.FieldMapping {
		f := bleve.NewNumericFieldMapping()
		f.Index, f.IncludeInAll, f.DocValues = indexed, false, indexed
		return f
	}
	text := bleve.NewTextFieldMapping()
	text.Analyzer, text.IncludeInAll, text.IncludeTermVectors, text.DocValues = analyzerName, false, true, false
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fConv, keywordField(true))
	doc.AddFieldMappingsAt("seq", numberField(true))
	doc.AddFieldMappingsAt(fID, keywordField(false))
	doc.AddFieldMappingsAt(fSender, keywordField(false))
	doc.AddFieldMappingsAt(fSent, numberField(false))
	doc.AddFieldMappingsAt(fText, text)
	doc.AddFieldMappingsAt(fDeleted, keywordField(false))
	m.DefaultMapping = doc
	m.DefaultAnalyzer = analyzerName
	return m
}

func newFormat1(dir string) (bleve.Index, error) { return bleve.New(dir, format1Mapping()) }

func format1ID(d Doc) string { return d.ConversationID + "/" + strconv.FormatUint(d.Seq, 10) }

func applyFormat1(idx bleve.Index, docs []Doc) error {
	batch := idx.NewBatch()
	for _, d := range docs {
		fields := map[string]any{
			fConv: d.ConversationID, "seq": float64(d.Seq), fID: d.MessageID,
			fSender: d.SenderID, fSent: float64(d.SentAt), fText: d.Text,
		}
		if d.Deleted {
			fields = map[string]any{fConv: d.ConversationID, "seq": float64(d.Seq), fID: d.MessageID, fDeleted: "1"}
		}
		if err := batch.Index(format1ID(d), fields); err != nil {
			return err
		}
	}
	return idx.Batch(batch)
}

// searchFormat1 runs q's first page as format 1 did (seq range clauses, sorted by the seq
// field) and returns the hits' seqs.
func searchFormat1(ctx context.Context, idx bleve.Index, q wire.Query) ([]uint64, error) {
	text := bleve.NewMatchQuery(q.Text)
	text.SetField(fText)
	text.SetOperator(query.MatchQueryOperatorAnd)
	scopes := make([]query.Query, 0, len(q.Scopes))
	for _, s := range q.Scopes {
		conv := bleve.NewTermQuery(s.ConversationID)
		conv.SetField(fConv)
		conv.SetBoost(0)
		if s.After == 0 && s.UpTo == 0 {
			scopes = append(scopes, conv)
			continue
		}
		scopes = append(scopes, bleve.NewConjunctionQuery(conv, format1SeqRange(s.After+1, s.UpTo)))
	}
	parts := []query.Query{text, bleve.NewDisjunctionQuery(scopes...)}
	if q.Before != 0 {
		if q.Before <= 1 {
			parts = append(parts, bleve.NewMatchNoneQuery())
		} else {
			parts = append(parts, format1SeqRange(0, q.Before-1))
		}
	}
	req := bleve.NewSearchRequestOptions(bleve.NewConjunctionQuery(parts...), q.Limit+1, 0, false)
	req.SortByCustom(search.SortOrder{
		&search.SortScore{Desc: true},
		&search.SortField{Field: "seq", Type: search.SortFieldAsNumber, Desc: true},
	})
	req.Fields = []string{fConv, "seq", fID, fSender, fSent}
	req.Highlight = bleve.NewHighlightWithStyle(htmlhl.Name)
	req.Highlight.AddField(fText)
	res, err := idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, err
	}
	out := []uint64{}
	for i, h := range res.Hits {
		if i == q.Limit {
			break
		}
		out = append(out, uint64(num(h.Fields["seq"])))
	}
	return out, nil
}

func format1SeqRange(lo, hi uint64) query.Query {
	var minp, maxp *float64
	incl := true
	if lo != 0 {
		f := float64(lo)
		minp = &f
	}
	if hi != 0 {
		f := float64(hi)
		maxp = &f
	}
	r := bleve.NewNumericRangeInclusiveQuery(minp, maxp, &incl, &incl)
	r.SetField("seq")
	r.SetBoost(0)
	return r
}

func num(v any) float64 { f, _ := v.(float64); return f }
