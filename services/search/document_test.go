package search

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/document"
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
		fields := map[string]any{fConv: d.ConversationID, fID: d.MessageID, fSender: d.SenderID, fSent: float64(d.SentAt), fText: d.Text}
		if d.Deleted {
			fields = map[string]any{fConv: d.ConversationID, fID: d.MessageID, fDeleted: "1"}
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
			if !reflect.DeepEqual(g[i], w[i]) {
				t.Errorf("%s: field %s:\n got %#v\nwant %#v", d.ID(), w[i].Name(), g[i], w[i])
			}
		}
	}
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
