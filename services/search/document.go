package search

import (
	"fmt"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
)

// documents makes the Bleve document of a Doc as the index's mapping does (MapDocument), but
// from the fields themselves: MapDocument walks a map of them by reflection, 7–15 µs and 47
// allocations a message against 2.4–3.5 µs and 18 (TestDocumentsAreWhatTheMappingMakes holds
// the two to the same document).
type documents struct {
	conv, id, sender, text, deleted textField
	sent                            index.FieldIndexingOptions
}

// textField is how a mapping indexes a string field: its options and analyzer.
type textField struct {
	options  index.FieldIndexingOptions
	analyzer analysis.Analyzer
}

// newDocuments reads the field mappings of m, an index mapping of the current format.
func newDocuments(m mapping.IndexMapping) (documents, error) {
	im, ok := m.(*mapping.IndexMappingImpl)
	if !ok || im.DefaultMapping == nil {
		return documents{}, fmt.Errorf("search index: mapping %T has no default document mapping", m)
	}
	field := func(name string) (*mapping.FieldMapping, error) {
		p := im.DefaultMapping.Properties[name]
		if p == nil || len(p.Fields) != 1 {
			return nil, fmt.Errorf("search index: mapping of field %q: want exactly one", name)
		}
		return p.Fields[0], nil
	}
	text := func(name string) (textField, error) {
		f, err := field(name)
		if err != nil {
			return textField{}, err
		}
		a := im.AnalyzerNamed(f.Analyzer)
		if f.Type != "text" || a == nil {
			return textField{}, fmt.Errorf("search index: field %q: type %q, analyzer %q", name, f.Type, f.Analyzer)
		}
		return textField{options: f.Options(), analyzer: a}, nil
	}
	var d documents
	var err error
	for _, t := range []struct {
		name string
		to   *textField
	}{{fConv, &d.conv}, {fID, &d.id}, {fSender, &d.sender}, {fText, &d.text}, {fDeleted, &d.deleted}} {
		if *t.to, err = text(t.name); err != nil {
			return documents{}, err
		}
	}
	sent, err := field(fSent)
	if err != nil {
		return documents{}, err
	}
	if sent.Type != "number" {
		return documents{}, fmt.Errorf("search index: field %q: type %q", fSent, sent.Type)
	}
	d.sent = sent.Options()
	if all, ok := im.DefaultMapping.Properties["_all"]; !ok || all.Enabled {
		return documents{}, fmt.Errorf("search index: mapping indexes an _all field")
	}
	return d, nil
}

// of returns d's document: a message's, or the tombstone of a deleted one.
func (ds documents) of(d Doc) *document.Document {
	doc := document.NewDocument(d.ID())
	add := func(name string, f textField, value string) {
		doc.AddField(document.NewTextFieldCustom(name, []uint64{}, []byte(value), f.options, f.analyzer))
	}
	add(fConv, ds.conv, d.ConversationID)
	add(fID, ds.id, d.MessageID)
	if d.Deleted {
		add(fDeleted, ds.deleted, "1")
	} else {
		add(fSender, ds.sender, d.SenderID)
		doc.AddField(document.NewNumericFieldWithIndexingOptions(fSent, []uint64{}, float64(d.SentAt), ds.sent))
		add(fText, ds.text, d.Text)
	}
	doc.SetIndexed()
	return doc
}
