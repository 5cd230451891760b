package search

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/document"
	index "github.com/blevesearch/bleve_index_api"
)

// TestDocumentsAreWhatTheMappingMakes: the document documents builds for a Doc is, field by
// field and after analysis, the one the index mapping makes of the Doc's fields (what Apply
// indexed before it built documents itself).
func TestDocumentsAreWhatTheMappingMakes(t *testing.T) {
	m, err := indexMapping()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := newDocuments(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Doc{
		{ConversationID: "dgkvx462jc4mvjvsulajhrjha7", Seq: 42, MessageID: "01M80KC42R86VJ9FTBJSDG9NTY", SenderID: "u1", SentAt: 1795316650072,
			Text: "Running late 🏃🏽‍♂️, the café's 안녕하세요 会議 <b>&</b> John's"},
		{ConversationID: "c", Seq: 1, MessageID: "m", SenderID: "s", SentAt: -5},
		{ConversationID: "c", Seq: 1 << 40, MessageID: "m", Deleted: true},
	} {
		fields := map[string]any{fConv: d.ConversationID, fMeta: encodeMeta(d), fText: d.Text}
		if d.Deleted {
			fields = map[string]any{fConv: d.ConversationID, fMeta: encodeMeta(d), fDeleted: "1"}
		}
		want := document.NewDocument(d.ID())
		if err := m.MapDocument(want, fields); err != nil {
			t.Fatal(err)
		}
		got := docs.of(d)
		if got.ID() != want.ID() || got.Indexed() != want.Indexed() {
			t.Fatalf("%s: id %q indexed %v, want %q %v", d.ID(), got.ID(), got.Indexed(), want.ID(), want.Indexed())
		}
		g, w := analyzed(got), analyzed(want)
		if len(g) != len(w) {
			t.Fatalf("%s: %d fields, the mapping makes %d", d.ID(), len(g), len(w))
		}
		for i := range w {
			if gv, wv := indexedAs(g[i]), indexedAs(w[i]); !reflect.DeepEqual(gv, wv) {
				t.Errorf("%s: field %s:\n got %+v\nwant %+v", d.ID(), w[i].Name(), gv, wv)
			}
		}
	}
}

// field is what the index takes of an analysed field: everything but the analyzer that made it.
type field struct {
	Name      string
	Options   index.FieldIndexingOptions
	Value     string
	Positions []uint64
	Length    int
	Terms     index.TokenFrequencies
}

func indexedAs(f document.Field) field {
	return field{Name: f.Name(), Options: f.Options(), Value: string(f.Value()), Positions: f.ArrayPositions(),
		Length: f.AnalyzedLength(), Terms: f.AnalyzedTokenFrequencies()}
}

// analyzed returns doc's fields, analyzed, by name.
func analyzed(doc *document.Document) []document.Field {
	fields := slices.Clone(doc.Fields)
	for _, f := range fields {
		f.Analyze()
	}
	slices.SortFunc(fields, func(a, b document.Field) int { return strings.Compare(a.Name(), b.Name()) })
	return fields
}

// TestMetaHoldsAnyIDAndSender: the stored field of a document's id, sender and time gives them
// back whatever bytes they hold, and anything encodeMeta did not write is refused.
func TestMetaHoldsAnyIDAndSender(t *testing.T) {
	for _, d := range []Doc{
		{MessageID: "01M80KC42R86VJ9FTBJSDG9NTY", SenderID: "u1", SentAt: 1795316650072},
		{MessageID: "", SenderID: "", SentAt: 0},
		{MessageID: "a b 3 ", SenderID: " 12 x", SentAt: -7},
		{MessageID: "ü\x00", SenderID: "\x1f", SentAt: 1 << 62},
	} {
		id, sender, sent, ok := decodeMeta(encodeMeta(d))
		if !ok || id != d.MessageID || sender != d.SenderID || sent != d.SentAt {
			t.Errorf("%+v: decoded %q %q %d %v", d, id, sender, sent, ok)
		}
	}
	for _, bad := range []string{"", "1", "1 2", "1 5 abc", "x 1 a", "1 -1 a", "1 x a"} {
		if _, _, _, ok := decodeMeta(bad); ok {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(Doc{MessageID: "m1", SenderID: "u1", SentAt: 5}))
	f.Add("1 5 abc")
	f.Fuzz(func(t *testing.T, s string) {
		id, sender, sent, ok := decodeMeta(s)
		if !ok {
			return
		}
		id2, sender2, sent2, ok := decodeMeta(encodeMeta(Doc{MessageID: id, SenderID: sender, SentAt: sent}))
		if !ok || id2 != id || sender2 != sender || sent2 != sent {
			t.Fatalf("%q decoded to %q %q %d, which do not survive encoding again", s, id, sender, sent)
		}
	})
}
