package search

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

var olderDocs = []Doc{
	{ConversationID: "a", Seq: 3, MessageID: "m3", SenderID: "u1", SentAt: 1_700_000_000_003, Text: "hello there"},
	{ConversationID: "b", Seq: 4, MessageID: "m4", SenderID: "u2", SentAt: 1_700_000_000_004, Text: "hello from b"},
	{ConversationID: "a", Seq: 7, MessageID: "m7", Deleted: true},
	{ConversationID: "a", Seq: 9, MessageID: "m9", SenderID: "u2", SentAt: 1_700_000_000_009, Text: "hello again 안녕하세요"},
}

// writeFormat1 leaves in dir an index as the code before format 2 wrote it.
func writeFormat1(t *testing.T, dir string) { writeOlder(t, dir, 1) }

// writeOlder leaves in dir an index as the code of format 1 or 2 wrote it.
func writeOlder(t *testing.T, dir string, format int) {
	t.Helper()
	if err := writeOlderIndex(dir, format, olderDocs); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated: the index in dir holds olderDocs, in the current format.
func checkMigrated(t *testing.T, dir string, wantMigrated uint64) {
	t.Helper()
	idx, err := openBleve(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idx.Close() }()
	if idx.Stale() != (wantMigrated > 0) {
		t.Errorf("stale %v, want %v", idx.Stale(), wantMigrated > 0)
	}
	if idx.Stale() {
		_, err := idx.Search(context.Background(), wire.Query{Text: "hello", Scopes: all("a"), Limit: 1})
		if !errorsIsUnavailable(err) {
			t.Errorf("search before the migration: %v, want unavailable", err)
		}
	}
	if n, err := idx.Migrate(context.Background()); err != nil || n != wantMigrated {
		t.Errorf("migrated %d documents (%v), want %d", n, err, wantMigrated)
	}
	if n, err := idx.Count(); err != nil || n != uint64(len(olderDocs)) {
		t.Errorf("%d documents (%v), want %d", n, err, len(olderDocs))
	}
	for _, want := range olderDocs {
		got, ok, err := idx.Doc(want.ID())
		if err != nil || !ok || got != want {
			t.Errorf("document %s: %+v %v %v, want %+v", want.ID(), got, ok, err, want)
		}
	}
	for _, tc := range []struct {
		scopes []wire.Scope
		want   []uint64
	}{
		{all("a", "b"), []uint64{4, 3, 9}},
		{[]wire.Scope{{ConversationID: "a", After: 3}}, []uint64{9}},
		{[]wire.Scope{{ConversationID: "a", UpTo: 3}, {ConversationID: "b", After: 4}}, []uint64{3}},
	} {
		got := seqs(t, idx, wire.Query{Text: "hello", Scopes: tc.scopes})
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("hello in %+v: %v, want %v", tc.scopes, got, want)
		}
	}
	if got := seqs(t, idx, wire.Query{Text: "안녕", Scopes: all("a")}); !slices.Equal(got, []uint64{9}) {
		t.Errorf("안녕: %v", got)
	}
	put(t, idx, Doc{ConversationID: "b", Seq: 10, MessageID: "m10", Text: "new after the migration"})
	if got := seqs(t, idx, wire.Query{Text: "migration", Scopes: all("b")}); !slices.Equal(got, []uint64{10}) {
		t.Errorf("a document indexed after the migration: %v", got)
	}
	if err := idx.Apply(context.Background(), nil, []string{DocID("b", 10)}); err != nil {
		t.Fatal(err)
	}
	for _, leftover := range []string{dir + ".old", dir + ".new"} {
		if _, err := os.Stat(leftover); err == nil {
			t.Errorf("%s left behind", leftover)
		}
	}
}

// TestOlderFormatsAreMigrated: an index of format 1 or 2 is rewritten in the current format
// when it is opened, every document kept (tombstones too), once.
func TestOlderFormatsAreMigrated(t *testing.T) {
	defer func(n int) { migrateBatch = n }(migrateBatch)
	migrateBatch = 3 // two batches
	for _, format := range []int{1, 2} {
		t.Run(fmt.Sprint("format ", format), func(t *testing.T) {
			dir := t.TempDir() + "/index"
			writeOlder(t, dir, format)
			checkMigrated(t, dir, uint64(len(olderDocs)))
			checkMigrated(t, dir, 0) // opened again: nothing to do
		})
	}
}

// TestMigrationResumesAfterACrash: the states a crash can leave a migration in.
func TestMigrationResumesAfterACrash(t *testing.T) {
	t.Run("between the renames", func(t *testing.T) {
		dir := t.TempDir() + "/index"
		writeFormat1(t, dir)
		if err := os.Rename(dir, dir+".old"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir+".new", 0o755); err != nil {
			t.Fatal(err)
		}
		checkMigrated(t, dir, uint64(len(olderDocs)))
	})
	t.Run("while copying", func(t *testing.T) {
		dir := t.TempDir() + "/index"
		writeFormat1(t, dir)
		if err := os.WriteFile(dir+".new", []byte("half a segment"), 0o644); err != nil {
			t.Fatal(err)
		}
		checkMigrated(t, dir, uint64(len(olderDocs)))
	})
	t.Run("before the old index was removed", func(t *testing.T) {
		dir := t.TempDir() + "/index"
		writeFormat1(t, dir)
		checkMigrated(t, dir, uint64(len(olderDocs)))
		writeFormat1(t, dir+".old")
		checkMigrated(t, dir, 0)
	})
}

// TestServiceGoesOnFromAMigratedIndex: a search process that finds an index written before
// format 2 at its consumer's position migrates it and goes on from there: the old messages are
// found, an edit of one finds its document, new messages are indexed.
func TestServiceGoesOnFromAMigratedIndex(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	var docs []Doc
	for _, text := range []string{"hello one", "hello two", "hello three"} {
		seq := e.publish(t, "c1", streams.KindMsg, text)
		docs = append(docs, Doc{ConversationID: "c1", Seq: seq, MessageID: fmt.Sprintf("m%06d", e.n), SenderID: "u1", SentAt: 1_700_000_000_000 + int64(e.n), Text: text})
	}
	r := e.start(t, 512)
	c := wire.NewClient(e.bus.NC, 5*time.Second)
	e.waitIndexed(t, c, docs[2].Seq)
	r.stop(t)
	// The same messages, as the code before format 2 indexed them.
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	if err := writeOlderIndex(e.dir, 1, docs); err != nil {
		t.Fatal(err)
	}

	e.revise(t, "c1", streams.KindEdit, docs[0].Seq, "hello edited")
	last := e.publish(t, "c1", streams.KindMsg, "hello four")
	e.start(t, 512)
	if st := e.waitIndexed(t, c, last); st.Documents != 4 {
		t.Errorf("status %+v, want 4 documents", st)
	}
	got := hitSeqs(hitsFor(t, c, "c1", "hello"))
	slices.Sort(got)
	if want := []uint64{docs[0].Seq, docs[1].Seq, docs[2].Seq, last}; !slices.Equal(got, want) {
		t.Errorf("hello: %v, want %v", got, want)
	}
	if h := hitsFor(t, c, "c1", "edited"); len(h) != 1 || h[0].Seq != docs[0].Seq || h[0].MessageID != docs[0].MessageID || h[0].SentAt != docs[0].SentAt {
		t.Errorf("edited: %+v", h)
	}
}

// TestNewerFormatIsRefused: an index that a later version wrote is not touched.
func TestNewerFormatIsRefused(t *testing.T) {
	dir := t.TempDir() + "/index"
	idx, err := OpenBleve(dir)
	if err != nil {
		t.Fatal(err)
	}
	put(t, idx, Doc{ConversationID: "a", Seq: 1, Text: "kept"})
	if err := idx.idx.SetInternal(formatKey, []byte("4")); err != nil {
		t.Fatal(err)
	}
	if err := idx.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBleve(dir); err == nil || !strings.Contains(err.Error(), `format "4" is newer`) {
		t.Fatalf("opening format 4: %v", err)
	}
}

// TestStopWhileMigrating: a search process stopped while it migrates its index stops at once and
// cleanly (no goroutine left: TestMain checks), and the next start has the index whole.
func TestStopWhileMigrating(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	var docs []Doc
	for seq := uint64(1); seq <= 5000; seq++ {
		docs = append(docs, Doc{ConversationID: "c1", Seq: seq, MessageID: fmt.Sprint("m", seq), Text: "hello"})
	}
	if err := writeOlderIndex(e.dir, 1, docs); err != nil {
		t.Fatal(err)
	}
	r := e.start(t, 512)
	r.stop(t)
	idx, err := OpenBleve(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idx.Close() }()
	if n, err := idx.Count(); err != nil || n != uint64(len(docs)) {
		t.Fatalf("%d documents (%v), want %d", n, err, len(docs))
	}
}

// TestQueriesWhileMigratingAreUnavailable: the search server answers a query of a stale index
// with the unavailable code, which the client maps to wire.ErrUnavailable (the API's 503).
func TestQueriesWhileMigratingAreUnavailable(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	writeFormat1(t, e.dir)
	met, _ := NewMetrics(nil)
	cfg := DefaultConfig()
	cfg.Dir = e.dir
	svc, err := New(cfg, Deps{Log: zap.NewNop(), JS: e.bus.JS, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	// Not started, so not migrated.
	srv, err := Serve(e.bus.NC, svc, cfg, zap.NewNop(), met)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Stop(e.ctx)
		_ = svc.Stop(e.ctx)
	}()
	_, err = wire.NewClient(e.bus.NC, 5*time.Second).Search(e.ctx, wire.Query{Text: "hello", Scopes: all("a"), Limit: 1})
	if !errorsIsUnavailable(err) {
		t.Fatalf("query while the index is stale: %v, want unavailable", err)
	}
}
