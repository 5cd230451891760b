package scylla

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/natter-chat/natter/pkg/store"
)

// DefaultBucketSize is the width, in CHAT seqs, of one message partition: 2^20. See the package
// comment for why.
const DefaultBucketSize uint64 = 1 << 20

// maxSeq is the largest seq the store can hold: CQL bigint is signed.
const maxSeq = math.MaxInt64

// bucketOf is the bucket of seq: the message partition (conversation, bucketOf(seq)) holds it.
func bucketOf(seq, size uint64) int64 { return int64(seq / size) }

// plan is how one Messages call walks a conversation: which buckets of the bucket index it visits,
// in which order, and which seqs it keeps.
type plan struct {
	// asc: After pages walk buckets and seqs oldest first (they want the Limit oldest after a
	// cursor); newest and Before pages walk newest first.
	asc bool
	// bounded: the walk starts at bucket first (inclusive) instead of the newest bucket.
	bounded bool
	first   int64
	// seqOp and seqBound restrict seq: "" (none), "<" (Before) or ">" (After).
	seqOp    string
	seqBound int64
	limit    int
}

// planPage turns a normalized page into a walk. empty reports a page that cannot hold any stored
// message (Before 1, After the largest seq), so no query is needed.
func planPage(p store.Page, size uint64) (pl plan, empty bool) {
	pl.limit = p.Limit
	switch {
	case p.Before != 0:
		if p.Before == 1 {
			return pl, true
		}
		if p.Before-1 >= maxSeq { // every storable seq is older: the newest page
			return pl, false
		}
		pl.bounded, pl.first = true, bucketOf(p.Before-1, size)
		pl.seqOp, pl.seqBound = "<", int64(p.Before)
	case p.Forward():
		if p.After >= maxSeq {
			return pl, true
		}
		pl.asc = true
		pl.bounded, pl.first = true, bucketOf(p.After+1, size)
		pl.seqOp, pl.seqBound = ">", int64(p.After)
	}
	return pl, false
}

// pageSource is what walk reads: the conversation's bucket index and single message partitions.
type pageSource interface {
	// buckets yields the conversation's non-empty buckets from pl.first (or the newest), in walk
	// order: descending, or ascending when pl.asc. One partition: message_buckets(conversation).
	buckets(ctx context.Context, conversationID string, pl plan) bucketIter
	// rows returns up to limit messages of partition (conversation, bucket) that pass pl's seq
	// bound, in walk order. One partition: messages(conversation, bucket).
	rows(ctx context.Context, conversationID string, bucket int64, pl plan, limit int) ([]store.Message, error)
}

// bucketIter yields bucket numbers; close reports the first error.
type bucketIter interface {
	next() (bucket int64, ok bool)
	close() error
}

// walk fills a page: it visits the bucket index in order and reads one bucket at a time, asking
// each only for what is still missing, and stops as soon as the page is full. Buckets are
// visited only if the index lists them, so a sparse conversation never costs empty reads.
// The result is newest first.
func walk(ctx context.Context, src pageSource, conversationID string, pl plan) ([]store.Message, error) {
	var out []store.Message
	it := src.buckets(ctx, conversationID, pl)
	for len(out) < pl.limit {
		b, ok := it.next()
		if !ok {
			break
		}
		rows, err := src.rows(ctx, conversationID, b, pl, pl.limit-len(out))
		if err != nil {
			_ = it.close()
			return nil, fmt.Errorf("read bucket %d: %w", b, err)
		}
		out = append(out, rows...)
	}
	if err := it.close(); err != nil {
		return nil, fmt.Errorf("read bucket index: %w", err)
	}
	if pl.asc {
		slices.Reverse(out)
	}
	return out, nil
}
