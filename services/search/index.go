package search

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/natter-chat/natter/services/search/wire"
)

// Doc is one message as the index holds it.
type Doc struct {
	ConversationID string
	Seq            uint64
	MessageID      string
	SenderID       string
	SentAt         int64 // Unix milliseconds
	Text           string
	// Deleted makes the document the tombstone of a deleted message: only its conversation, seq
	// and id are kept, and no query finds it.
	Deleted bool
}

// DocID names a message in the index: its seq and conversation, which name one CHAT event
// forever, so indexing an event again replaces it instead of adding a second document. The seq
// comes first, zero-padded to seqDigits, so that ids sort as seqs: the index orders hits of
// equal score by id, and filters by the seq it reads back from the id (parseDocID).
func DocID(conversationID string, seq uint64) string {
	return seqPrefix(seq) + conversationID
}

// seqDigits is the width of a seq in a DocID: every uint64 fits.
const seqDigits = 20

// seqPrefix is the start of the DocID of every document of seq: the padded seq and "/".
func seqPrefix(seq uint64) string {
	s := strconv.FormatUint(seq, 10)
	return strings.Repeat("0", seqDigits-len(s)) + s + "/"
}

// parseDocID is the conversation and seq of a DocID; ok is false for anything else.
func parseDocID(id string) (conversationID string, seq uint64, ok bool) {
	if len(id) <= seqDigits+1 || id[seqDigits] != '/' {
		return "", 0, false
	}
	for _, c := range []byte(id[:seqDigits]) {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	seq, err := strconv.ParseUint(id[:seqDigits], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[seqDigits+1:], seq, true
}

// ID is the document's DocID.
func (d Doc) ID() string { return DocID(d.ConversationID, d.Seq) }

// Index is what the search service needs from a text index. The embedded one is Bleve
// (OpenBleve); a cluster deployment would implement it on OpenSearch or Elasticsearch.
//
// Contract:
//   - Apply writes every doc of put (replacing any with the same ID) and removes every id of
//     remove; when it returns nil, all of it survives a crash of the process. It is idempotent.
//   - Search returns only documents inside the query's scopes, best score first and highest seq
//     first among equal scores, with a cursor for the next page; a malformed cursor is
//     wire.ErrBadQuery.
//   - Safe for concurrent use: searches run while Apply writes.
type Index interface {
	Apply(ctx context.Context, put []Doc, remove []string) error
	Search(ctx context.Context, q wire.Query) (wire.Result, error)
	// Count is how many documents the index holds.
	Count() (uint64, error)
	Close() error
}

// cursor is the position after the last hit of a page: its score and seq.
type cursor struct {
	score float64
	seq   uint64
}

func (c cursor) encode() string {
	return strconv.FormatFloat(c.score, 'g', -1, 64) + "_" + strconv.FormatUint(c.seq, 10)
}

// decodeCursor parses a cursor from a caller; anything else than what encode writes is refused.
func decodeCursor(s string) (cursor, error) {
	score, seq, ok := strings.Cut(s, "_")
	if !ok || len(s) > wire.MaxCursorBytes {
		return cursor{}, fmt.Errorf("cursor %q: %w", s, wire.ErrBadQuery)
	}
	var c cursor
	var err error
	if c.score, err = strconv.ParseFloat(score, 64); err != nil || c.score < 0 || c.score != c.score || c.score > 1e300 {
		return cursor{}, fmt.Errorf("cursor %q: bad score: %w", s, wire.ErrBadQuery)
	}
	if c.seq, err = strconv.ParseUint(seq, 10, 63); err != nil || c.seq == 0 {
		return cursor{}, fmt.Errorf("cursor %q: bad seq: %w", s, wire.ErrBadQuery)
	}
	if c.encode() != s {
		return cursor{}, fmt.Errorf("cursor %q: not canonical: %w", s, wire.ErrBadQuery)
	}
	return c, nil
}
