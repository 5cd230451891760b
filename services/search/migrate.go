package search

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/blevesearch/bleve/v2"
	index "github.com/blevesearch/bleve_index_api"
)

// Migration of an index of format 1 (written before formats were named) or 2 to the current
// format (see indexFormat), in place: every document is read back from the old index, whose
// stored fields hold all of a Doc, and written to a new one beside it, which then takes the old
// one's place. Nothing is replayed from CHAT, so messages older than what CHAT keeps stay
// searchable, and the search consumer goes on from where it was: the new index holds what the
// old one did.
//
// Crash safety: the new index is built in <dir>.new and swapped in by two renames (<dir> to
// <dir>.old, then <dir>.new to <dir>). recoverMigration, run before every open, puts <dir>.old
// back if a crash came between the two, and removes a finished migration's <dir>.old and an
// unfinished <dir>.new; the migration then runs again.

// migrateBatch is how many documents the migration writes in one batch (a variable for tests).
var migrateBatch = 2048

// recoverMigration leaves dir as a migration that crashed would have found it, or as one that
// finished leaves it.
func recoverMigration(dir string) error {
	old, tmp := dir+".old", dir+".new"
	if _, err := os.Stat(old); err == nil {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.Rename(old, dir); err != nil {
				return fmt.Errorf("search index: restore %s: %w", old, err)
			}
		} else if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("search index: remove %s: %w", old, err)
		}
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("search index: remove %s: %w", tmp, err)
	}
	return nil
}

// swapMigrated closes old, the index of an older format in dir, puts the migrated copy in
// <dir>.new in its place and opens it.
func swapMigrated(dir string, old bleve.Index) (bleve.Index, error) {
	if err := old.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(dir, dir+".old"); err != nil {
		return nil, err
	}
	if err := os.Rename(dir+".new", dir); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir + ".old"); err != nil {
		return nil, err
	}
	return openOrCreate(dir)
}

// copyOlder writes every document of old, an index of format 1 or 2, to a new index in dir,
// until ctx is done.
func copyOlder(ctx context.Context, old bleve.Index, dir string) (uint64, error) {
	adv, err := old.Advanced()
	if err != nil {
		return 0, err
	}
	r, err := adv.Reader()
	if err != nil {
		return 0, err
	}
	defer func() { _ = r.Close() }()
	ids, err := r.DocIDReaderAll()
	if err != nil {
		return 0, err
	}
	defer func() { _ = ids.Close() }()
	idx, err := create(dir)
	if err != nil {
		return 0, err
	}
	to := &Bleve{dir: dir}
	if err := to.use(idx); err != nil {
		_ = idx.Close()
		return 0, err
	}
	var (
		batch []Doc
		n     uint64
	)
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := to.Apply(ctx, batch, nil); err != nil {
			return err
		}
		n += uint64(len(batch))
		batch = batch[:0]
		return nil
	}
	for {
		iid, err := ids.Next()
		if err != nil {
			_ = idx.Close()
			return 0, fmt.Errorf("next document: %w", err)
		}
		if iid == nil {
			break
		}
		d, err := readOlder(r, iid)
		if err == nil && len(batch) == migrateBatch {
			err = flush()
		}
		if err != nil {
			_ = idx.Close()
			return 0, err
		}
		batch = append(batch, d)
	}
	err = flush()
	if cerr := idx.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// readOlder is a document of an index of format 1 or 2. Both stored every field of a Doc on
// its own (fID, fSender, fSent); format 1 also had "seq", a number, and ids <conversation>/<seq>,
// format 2 the seq and conversation in the id (DocID).
func readOlder(r index.IndexReader, iid index.IndexInternalID) (Doc, error) {
	id, err := r.ExternalID(iid)
	if err != nil {
		return Doc{}, fmt.Errorf("document id: %w", err)
	}
	doc, err := r.Document(id)
	if err != nil {
		return Doc{}, fmt.Errorf("document %s: %w", id, err)
	}
	if doc == nil {
		return Doc{}, fmt.Errorf("document %s: listed but not found", id)
	}
	var d Doc
	var seq, sent float64
	doc.VisitFields(func(f index.Field) {
		switch f.Name() {
		case fConv:
			d.ConversationID = string(f.Value())
		case fID:
			d.MessageID = string(f.Value())
		case fSender:
			d.SenderID = string(f.Value())
		case fText:
			d.Text = string(f.Value())
		case fDeleted:
			d.Deleted = true
		case "seq":
			if nf, ok := f.(index.NumericField); ok {
				seq, _ = nf.Number()
			}
		case fSent:
			if nf, ok := f.(index.NumericField); ok {
				sent, _ = nf.Number()
			}
		}
	})
	d.Seq, d.SentAt = uint64(seq), int64(sent)
	if conv, seq, ok := parseDocID(id); ok && d.Seq == 0 { // format 2
		d.ConversationID, d.Seq = conv, seq
	}
	if d.ConversationID == "" || d.Seq == 0 {
		return Doc{}, fmt.Errorf("document %s: no conversation or seq", id)
	}
	return d, nil
}
