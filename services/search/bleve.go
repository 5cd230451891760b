package search

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	"github.com/blevesearch/bleve/v2/search/searcher"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/natter-chat/natter/services/search/wire"
)

// Field names of a document in the Bleve index. A document's seq and conversation are in its
// id (DocID); the conversation is also indexed, for the scopes' clauses.
const (
	fConv = "conv"
	// fMeta holds the message id, sender and time in one stored field (encodeMeta): indexing
	// cost as little as with none of the three stored, against 8 % more for three fields.
	fMeta = "meta"
	fText = "text"
	// fDeleted marks the tombstone of a deleted message (no text, so no query matches it), which
	// keeps an edit published after the delete from indexing the text again.
	fDeleted = "deleted"
)

// Fields of formats 1 and 2 that format 3 keeps in fMeta; only the migration reads them.
const (
	fID     = "id"
	fSender = "sender"
	fSent   = "sent"
)

// indexFormat names the layout of the documents and the mapping, kept in the index under
// formatKey. Format 3 keeps no term vectors for the text, and stores the message id, sender and
// time in one field (fMeta) and the conversation only in the id: a sixth less CPU to index than
// format 2 (BenchmarkIndexFormats). Without term vectors the index cannot say where a hit's terms are; Search finds
// them again in the stored text (snippet). Format 2 put the seq in the document id,
// zero-padded so that ids sort as seqs: the scope and before filters read the seq from the id of
// each hit (scopeFilter). Format 1 (no formatKey) indexed seq as a number, 16 terms a document,
// half of what indexing cost. OpenBleve migrates an index of format 1 or 2 to format 3.
const indexFormat = "3"

var formatKey = []byte("natter_index_format")

// Bleve is the embedded Index: a Bleve (scorch) index in one directory. Apply returns once
// Bleve has persisted the batch (Bleve's default, "unsafe_batch" off: the segment is written
// and its root committed with an fsync).
type Bleve struct {
	dir string
	mu  sync.RWMutex // write-held by Reset and Migrate, which swap idx
	idx bleve.Index
	// stale: idx is of an older format and must be migrated (Migrate) before it is searched or
	// written; docs and marks are then unset.
	stale bool
	docs  documents // how idx's mapping makes documents
	marks marker    // where a query's terms are in a hit's text
}

// use makes idx, an index of the current format, the one b reads and writes.
func (b *Bleve) use(idx bleve.Index) error {
	docs, err := newDocuments(idx.Mapping())
	if err != nil {
		return err
	}
	marks, err := newMarker(docs.text.analyzer)
	if err != nil {
		return err
	}
	b.idx, b.docs, b.marks, b.stale = idx, docs, marks, false
	return nil
}

var _ Index = (*Bleve)(nil)

// errStale answers a search of an index that is not migrated yet.
var errStale = fmt.Errorf("search index: being migrated to the current format: %w", wire.ErrUnavailable)

// OpenBleve opens the index in dir, creating it if it does not exist, and migrating it first if
// an older version wrote it (Migrate).
func OpenBleve(dir string) (*Bleve, error) {
	b, err := openBleve(dir)
	if err != nil {
		return nil, err
	}
	if _, err := b.Migrate(context.Background()); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// openBleve opens the index in dir, creating it if it does not exist; one of format 1 is left
// to Migrate (Stale).
func openBleve(dir string) (*Bleve, error) {
	if err := recoverMigration(dir); err != nil {
		return nil, err
	}
	idx, err := openOrCreate(dir)
	if err != nil {
		return nil, err
	}
	format, err := idx.GetInternal(formatKey)
	if err != nil {
		_ = idx.Close()
		return nil, fmt.Errorf("search index %s: format: %w", dir, err)
	}
	switch string(format) {
	case indexFormat:
		b := &Bleve{dir: dir}
		if err := b.use(idx); err != nil {
			_ = idx.Close()
			return nil, fmt.Errorf("search index %s: %w", dir, err)
		}
		return b, nil
	case "", "2":
		return &Bleve{dir: dir, idx: idx, stale: true}, nil
	default:
		_ = idx.Close()
		return nil, fmt.Errorf("search index %s: format %q is newer than this version's %q: delete it and the search consumer to rebuild it from CHAT", dir, format, indexFormat)
	}
}

// Stale reports whether the index is of an older format and waits for Migrate: searches answer
// wire.ErrUnavailable until then, and nothing may be applied.
func (b *Bleve) Stale() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.stale
}

// Migrate rewrites a stale index in the current format (see migrate.go) and returns how many
// documents it copied; an index that is not stale is left as it is. Searches meanwhile answer
// wire.ErrUnavailable. Cancelling ctx stops the copy; the next open starts it again.
func (b *Bleve) Migrate(ctx context.Context) (uint64, error) {
	b.mu.RLock()
	old, stale := b.idx, b.stale
	b.mu.RUnlock()
	if !stale {
		return 0, nil
	}
	n, err := copyOlder(ctx, old, b.dir+".new")
	if err != nil {
		return 0, fmt.Errorf("search index: migrate %s: %w", b.dir, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	idx, err := swapMigrated(b.dir, old)
	if err != nil {
		return 0, fmt.Errorf("search index: migrate %s: %w", b.dir, err)
	}
	if err := b.use(idx); err != nil {
		_ = idx.Close()
		return 0, fmt.Errorf("search index: migrate %s: %w", b.dir, err)
	}
	return n, nil
}

func openOrCreate(dir string) (bleve.Index, error) {
	idx, err := bleve.Open(dir)
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		return create(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("search index %s: %w", dir, err)
	}
	return idx, nil
}

// create makes an empty index of the current format in dir.
func create(dir string) (bleve.Index, error) {
	m, err := indexMapping()
	if err != nil {
		return nil, fmt.Errorf("search index: mapping: %w", err)
	}
	idx, err := bleve.New(dir, m)
	if err != nil {
		return nil, fmt.Errorf("search index %s: %w", dir, err)
	}
	if err := idx.SetInternal(formatKey, []byte(indexFormat)); err != nil {
		_ = idx.Close()
		return nil, fmt.Errorf("search index %s: set format: %w", dir, err)
	}
	return idx, nil
}

func indexMapping() (*mapping.IndexMappingImpl, error) {
	m := bleve.NewIndexMapping()
	if err := addAnalyzer(m); err != nil {
		return nil, err
	}
	conv := keywordField(true)
	conv.Store = false // it is in the document id
	text := bleve.NewTextFieldMapping()
	text.Analyzer, text.IncludeInAll, text.IncludeTermVectors, text.DocValues = analyzerName, false, false, false

	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fConv, conv)
	doc.AddFieldMappingsAt(fMeta, keywordField(false))
	doc.AddFieldMappingsAt(fText, text)
	doc.AddFieldMappingsAt(fDeleted, keywordField(false))
	// No "_all" field: every query names its fields, and composing an empty one for each
	// document cost about 5 % of indexing.
	doc.AddSubDocumentMapping("_all", bleve.NewDocumentDisabledMapping())
	m.DefaultMapping = doc
	m.DefaultAnalyzer = analyzerName
	return m, m.Validate()
}

// keywordField is a string field kept whole: stored, indexed if indexed, in no _all field and
// without doc values. Every format's mapping has its fields this way.
func keywordField(indexed bool) *mapping.FieldMapping {
	f := bleve.NewKeywordFieldMapping()
	f.Analyzer, f.Index, f.IncludeInAll, f.DocValues = keyword.Name, indexed, false, false
	return f
}

// Apply implements Index.
func (b *Bleve) Apply(_ context.Context, put []Doc, remove []string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.stale {
		return errStale
	}
	batch := b.idx.NewBatch()
	for _, d := range put {
		if err := batch.IndexAdvanced(b.docs.of(d)); err != nil {
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
	idx, err := create(b.dir)
	if err != nil {
		return err
	}
	if err := b.use(idx); err != nil {
		_ = idx.Close()
		return fmt.Errorf("search index: reset: %w", err)
	}
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
	if len(q.Scopes) == 0 || q.Before == 1 {
		return wire.Result{Hits: []wire.Hit{}}, nil
	}
	filter := newScopeFilter(bleveQuery(q), q)
	req := bleve.NewSearchRequestOptions(filter, q.Limit+1, 0, false)
	// Ids sort as seqs (DocID), and a seq is one CHAT event: score, then seq, is a total order.
	req.SortByCustom(search.SortOrder{&search.SortScore{Desc: true}, &search.SortDocID{Desc: true}})
	if after != nil {
		// Every id of seq s sorts after seqPrefix(s) ("s/conversation"), so with descending
		// ids the page starts below seq s among hits of the cursor's score.
		req.SearchAfter = []string{strconv.FormatFloat(after.score, 'g', -1, 64), seqPrefix(after.seq)}
	}
	req.Fields = []string{fMeta, fText}

	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.stale {
		return wire.Result{}, errStale
	}
	res, err := b.idx.SearchInContext(ctx, req)
	if err == nil {
		err = filter.err()
	}
	if err != nil {
		return wire.Result{}, fmt.Errorf("search index: query: %w", err)
	}
	out := wire.Result{Hits: make([]wire.Hit, 0, min(len(res.Hits), q.Limit))}
	terms := b.marks.terms(q.Text)
	for i, h := range res.Hits {
		if i == q.Limit {
			last := out.Hits[len(out.Hits)-1]
			out.NextCursor = cursor{score: last.Score, seq: last.Seq}.encode()
			break
		}
		conv, seq, ok := parseDocID(h.ID)
		if !ok {
			return wire.Result{}, fmt.Errorf("search index: document id %q", h.ID)
		}
		id, sender, sent, ok := decodeMeta(str(h.Fields[fMeta]))
		if !ok {
			return wire.Result{}, fmt.Errorf("search index: document %q: stored fields %q", h.ID, str(h.Fields[fMeta]))
		}
		out.Hits = append(out.Hits, wire.Hit{
			ConversationID: conv, Seq: seq, MessageID: id, SenderID: sender, SentAt: sent, Score: h.Score,
			Snippet: b.marks.snippet(str(h.Fields[fText]), terms),
		})
	}
	return out, nil
}

// bleveQuery is the text matched (every term, analyzed like the messages) in the scopes'
// conversations. The conversation clauses are filters: boost 0, they add nothing to the score.
// The seq bounds (the scopes' intervals and Before) are scopeFilter's.
func bleveQuery(q wire.Query) query.Query {
	text := bleve.NewMatchQuery(q.Text)
	text.SetField(fText)
	text.SetOperator(query.MatchQueryOperatorAnd)
	convs := make([]query.Query, 0, len(q.Scopes))
	seen := make(map[string]bool, len(q.Scopes))
	for _, s := range q.Scopes {
		if seen[s.ConversationID] {
			continue
		}
		seen[s.ConversationID] = true
		conv := bleve.NewTermQuery(s.ConversationID)
		conv.SetField(fConv)
		conv.SetBoost(0)
		convs = append(convs, conv)
	}
	return bleve.NewConjunctionQuery(text, bleve.NewDisjunctionQuery(convs...))
}

// scopeFilter passes on the hits of its query that are inside the scopes and below Before,
// reading each hit's conversation and seq from its id: the hits a query of format 1 found with
// seq range terms. A hit outside is dropped before it is collected, so pages, their sizes and
// cursors are what they were. The cost is visiting every match of the text in the scopes'
// conversations, also those outside the intervals: a member who joined a long group late pays
// for the group's whole history, as a member from its start does.
type scopeFilter struct {
	inner  query.Query
	scopes map[string][]wire.Scope
	before uint64
	failed *error // the first error reading an id, reported by err
}

func newScopeFilter(inner query.Query, q wire.Query) *scopeFilter {
	f := &scopeFilter{inner: inner, scopes: make(map[string][]wire.Scope, len(q.Scopes)), before: q.Before, failed: new(error)}
	for _, s := range q.Scopes {
		f.scopes[s.ConversationID] = append(f.scopes[s.ConversationID], s)
	}
	return f
}

// keeps is the filter's rule: seq below before, and inside one of conv's scopes.
func (f *scopeFilter) keeps(conv string, seq uint64) bool {
	if f.before != 0 && seq >= f.before {
		return false
	}
	for _, s := range f.scopes[conv] {
		if s.Contains(seq) {
			return true
		}
	}
	return false
}

func (f *scopeFilter) err() error { return *f.failed }

// Searcher implements query.Query.
func (f *scopeFilter) Searcher(ctx context.Context, r index.IndexReader, m mapping.IndexMapping, o search.SearcherOptions) (search.Searcher, error) {
	s, err := f.inner.Searcher(ctx, r, m, o)
	if err != nil {
		return nil, err
	}
	return searcher.NewFilteringSearcher(ctx, s, func(_ *search.SearchContext, d *search.DocumentMatch) bool {
		id, err := r.ExternalID(d.IndexInternalID)
		if err != nil {
			if *f.failed == nil {
				*f.failed = fmt.Errorf("id of a hit: %w", err)
			}
			return false
		}
		conv, seq, ok := parseDocID(id)
		return ok && f.keeps(conv, seq)
	}), nil
}

// Doc returns the document id as indexed; ok is false if there is none. A deleted message's
// document is a tombstone: no text, Deleted set.
func (b *Bleve) Doc(id string) (d Doc, ok bool, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.stale {
		return Doc{}, false, errStale
	}
	req := bleve.NewSearchRequest(bleve.NewDocIDQuery([]string{id}))
	req.Fields = []string{fMeta, fText, fDeleted}
	res, err := b.idx.Search(req)
	if err != nil {
		return Doc{}, false, fmt.Errorf("search index: document %s: %w", id, err)
	}
	if len(res.Hits) == 0 {
		return Doc{}, false, nil
	}
	conv, seq, ok := parseDocID(res.Hits[0].ID)
	if !ok {
		return Doc{}, false, fmt.Errorf("search index: document id %q", res.Hits[0].ID)
	}
	f := res.Hits[0].Fields
	mid, sender, sent, ok := decodeMeta(str(f[fMeta]))
	if !ok {
		return Doc{}, false, fmt.Errorf("search index: document %s: stored fields %q", id, str(f[fMeta]))
	}
	return Doc{ConversationID: conv, Seq: seq, MessageID: mid, SenderID: sender, SentAt: sent,
		Text: str(f[fText]), Deleted: str(f[fDeleted]) != ""}, true, nil
}

func str(v any) string { s, _ := v.(string); return s }
