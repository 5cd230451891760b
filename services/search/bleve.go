package search

import (
	"context"
	"errors"
	"fmt"
	"html"
	"os"
	"strconv"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	htmlhl "github.com/blevesearch/bleve/v2/search/highlight/highlighter/html"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/natter-chat/natter/services/search/wire"
)

// Field names of a document in the Bleve index.
const (
	fConv   = "conv"
	fSeq    = "seq"
	fID     = "id"
	fSender = "sender"
	fSent   = "sent"
	fText   = "text"
	// fDeleted marks the tombstone of a deleted message (no text, so no query matches it), which
	// keeps an edit published after the delete from indexing the text again.
	fDeleted = "deleted"
)

// snippetRunes is the length of the snippet of a hit without highlighted fragments.
const snippetRunes = 200

// Bleve is the embedded Index: a Bleve (scorch) index in one directory. Apply returns once
// Bleve has persisted the batch (Bleve's default, "unsafe_batch" off: the segment is written
// and its root committed with an fsync).
type Bleve struct {
	dir string
	mu  sync.RWMutex // write-held by Reset, which swaps idx
	idx bleve.Index
}

var _ Index = (*Bleve)(nil)

// OpenBleve opens the index in dir, creating it if it does not exist.
func OpenBleve(dir string) (*Bleve, error) {
	idx, err := openOrCreate(dir)
	if err != nil {
		return nil, err
	}
	return &Bleve{dir: dir, idx: idx}, nil
}

func openOrCreate(dir string) (bleve.Index, error) {
	idx, err := bleve.Open(dir)
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		m, merr := indexMapping()
		if merr != nil {
			return nil, fmt.Errorf("search index: mapping: %w", merr)
		}
		idx, err = bleve.New(dir, m)
	}
	if err != nil {
		return nil, fmt.Errorf("search index %s: %w", dir, err)
	}
	return idx, nil
}

func indexMapping() (*mapping.IndexMappingImpl, error) {
	m := bleve.NewIndexMapping()
	if err := addAnalyzer(m); err != nil {
		return nil, err
	}
	keywordField := func(indexed bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer, f.Index, f.IncludeInAll, f.DocValues = keyword.Name, indexed, false, false
		return f
	}
	numberField := func(indexed bool) *mapping.FieldMapping {
		f := bleve.NewNumericFieldMapping()
		f.Index, f.IncludeInAll, f.DocValues = indexed, false, indexed
		return f
	}
	text := bleve.NewTextFieldMapping()
	text.Analyzer, text.IncludeInAll, text.IncludeTermVectors, text.DocValues = analyzerName, false, true, false

	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fConv, keywordField(true))
	doc.AddFieldMappingsAt(fSeq, numberField(true))
	doc.AddFieldMappingsAt(fID, keywordField(false))
	doc.AddFieldMappingsAt(fSender, keywordField(false))
	doc.AddFieldMappingsAt(fSent, numberField(false))
	doc.AddFieldMappingsAt(fText, text)
	doc.AddFieldMappingsAt(fDeleted, keywordField(false))
	m.DefaultMapping = doc
	m.DefaultAnalyzer = analyzerName
	return m, m.Validate()
}

// Apply implements Index.
func (b *Bleve) Apply(_ context.Context, put []Doc, remove []string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	batch := b.idx.NewBatch()
	for _, d := range put {
		fields := map[string]any{
			fConv: d.ConversationID, fSeq: float64(d.Seq), fID: d.MessageID,
			fSender: d.SenderID, fSent: float64(d.SentAt), fText: d.Text,
		}
		if d.Deleted {
			fields = map[string]any{fConv: d.ConversationID, fSeq: float64(d.Seq), fID: d.MessageID, fDeleted: "1"}
		}
		err := batch.Index(d.ID(), fields)
		if err != nil {
			return fmt.Errorf("search index: %s: %w", d.ID(), err)
		}
	}
	for _, id := range remove {
		batch.Delete(id)
	}
	if batch.Size() == 0 {
		return nil
	}
	if err := b.idx.Batch(batch); err != nil {
		return fmt.Errorf("search index: batch of %d: %w", batch.Size(), err)
	}
	return nil
}

// Count implements Index.
func (b *Bleve) Count() (uint64, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n, err := b.idx.DocCount()
	if err != nil {
		return 0, fmt.Errorf("search index: count: %w", err)
	}
	return n, nil
}

// Reset drops every document: the directory is removed and created again.
func (b *Bleve) Reset() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.idx.Close(); err != nil {
		return fmt.Errorf("search index: close for reset: %w", err)
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("search index: reset: %w", err)
	}
	idx, err := openOrCreate(b.dir)
	if err != nil {
		return err
	}
	b.idx = idx
	return nil
}

// Close implements Index.
func (b *Bleve) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.idx.Close(); err != nil {
		return fmt.Errorf("search index: close: %w", err)
	}
	return nil
}

// Search implements Index.
func (b *Bleve) Search(ctx context.Context, q wire.Query) (wire.Result, error) {
	if err := q.Validate(); err != nil {
		return wire.Result{}, err
	}
	var after *cursor
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return wire.Result{}, err
		}
		after = &c
	}
	if len(q.Scopes) == 0 {
		return wire.Result{Hits: []wire.Hit{}}, nil
	}
	req := bleve.NewSearchRequestOptions(bleveQuery(q), q.Limit+1, 0, false)
	req.SortByCustom(search.SortOrder{
		&search.SortScore{Desc: true},
		&search.SortField{Field: fSeq, Type: search.SortFieldAsNumber, Desc: true},
	})
	if after != nil {
		req.SearchAfter = []string{strconv.FormatFloat(after.score, 'g', -1, 64), strconv.FormatUint(after.seq, 10)}
	}
	req.Fields = []string{fConv, fSeq, fID, fSender, fSent}
	req.Highlight = bleve.NewHighlightWithStyle(htmlhl.Name)
	req.Highlight.AddField(fText)

	b.mu.RLock()
	defer b.mu.RUnlock()
	res, err := b.idx.SearchInContext(ctx, req)
	if err != nil {
		return wire.Result{}, fmt.Errorf("search index: query: %w", err)
	}
	out := wire.Result{Hits: make([]wire.Hit, 0, min(len(res.Hits), q.Limit))}
	for i, h := range res.Hits {
		if i == q.Limit {
			last := out.Hits[len(out.Hits)-1]
			out.NextCursor = cursor{score: last.Score, seq: last.Seq}.encode()
			break
		}
		hit := wire.Hit{
			ConversationID: str(h.Fields[fConv]), Seq: uint64(num(h.Fields[fSeq])), MessageID: str(h.Fields[fID]),
			SenderID: str(h.Fields[fSender]), SentAt: int64(num(h.Fields[fSent])), Score: h.Score,
		}
		if frags := h.Fragments[fText]; len(frags) > 0 {
			hit.Snippet = frags[0]
		} else if hit.Snippet, err = b.plainSnippet(h.ID); err != nil {
			return wire.Result{}, err
		}
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

// bleveQuery is the text matched (every term, analyzed like the messages) within the scopes,
// below Before. The scope and seq clauses are filters: boost 0, they add nothing to the score.
func bleveQuery(q wire.Query) query.Query {
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
		scopes = append(scopes, bleve.NewConjunctionQuery(conv, seqRange(s.After+1, s.UpTo)))
	}
	parts := []query.Query{text, bleve.NewDisjunctionQuery(scopes...)}
	if q.Before != 0 {
		if q.Before <= 1 {
			parts = append(parts, bleve.NewMatchNoneQuery())
		} else {
			parts = append(parts, seqRange(0, q.Before-1))
		}
	}
	return bleve.NewConjunctionQuery(parts...)
}

// seqRange matches lo <= seq <= hi; 0 leaves a bound open.
func seqRange(lo, hi uint64) query.Query {
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
	r.SetField(fSeq)
	r.SetBoost(0)
	return r
}

// plainSnippet is the start of a document's text, escaped: the snippet of a hit whose matches
// the highlighter did not place.
func (b *Bleve) plainSnippet(id string) (string, error) {
	req := bleve.NewSearchRequest(bleve.NewDocIDQuery([]string{id}))
	req.Fields = []string{fText}
	res, err := b.idx.Search(req)
	if err != nil {
		return "", fmt.Errorf("search index: text of %s: %w", id, err)
	}
	if len(res.Hits) == 0 {
		return "", nil
	}
	text := []rune(str(res.Hits[0].Fields[fText]))
	if len(text) > snippetRunes {
		return html.EscapeString(string(text[:snippetRunes])) + "…", nil
	}
	return html.EscapeString(string(text)), nil
}

// Doc returns the document id as indexed; ok is false if there is none. A deleted message's
// document is a tombstone: no text, Deleted set.
func (b *Bleve) Doc(id string) (d Doc, ok bool, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	req := bleve.NewSearchRequest(bleve.NewDocIDQuery([]string{id}))
	req.Fields = []string{fConv, fSeq, fID, fSender, fSent, fText, fDeleted}
	res, err := b.idx.Search(req)
	if err != nil {
		return Doc{}, false, fmt.Errorf("search index: document %s: %w", id, err)
	}
	if len(res.Hits) == 0 {
		return Doc{}, false, nil
	}
	f := res.Hits[0].Fields
	return Doc{ConversationID: str(f[fConv]), Seq: uint64(num(f[fSeq])), MessageID: str(f[fID]),
		SenderID: str(f[fSender]), SentAt: int64(num(f[fSent])), Text: str(f[fText]), Deleted: str(f[fDeleted]) != ""}, true, nil
}

func str(v any) string { s, _ := v.(string); return s }

func num(v any) float64 { f, _ := v.(float64); return f }
