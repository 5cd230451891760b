package search

import (
	"fmt"
	"strconv"
	"strings"

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
	conv, meta, text, deleted textField
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
	}{{fConv, &d.conv}, {fMeta, &d.meta}, {fText, &d.text}, {fDeleted, &d.deleted}} {
		if *t.to, err = text(t.name); err != nil {
			return documents{}, err
		}
	}
	d.text.analyzer = indexingAnalyzer(d.text.analyzer)
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
	add(fMeta, ds.meta, encodeMeta(d))
	if d.Deleted {
		add(fDeleted, ds.deleted, "1")
	} else {
		add(fText, ds.text, d.Text)
	}
	doc.SetIndexed()
	return doc
}

// encodeMeta packs a Doc's message id, sender and time into the one stored field fMeta:
// "<sent> <length of the id> <id><sender>", which holds any bytes in the id and the sender.
func encodeMeta(d Doc) string {
	return strconv.FormatInt(d.SentAt, 10) + " " + strconv.Itoa(len(d.MessageID)) + " " + d.MessageID + d.SenderID
}

// decodeMeta unpacks what encodeMeta packed; ok is false for anything else.
func decodeMeta(s string) (messageID, senderID string, sentAt int64, ok bool) {
	sent, rest, ok1 := strings.Cut(s, " ")
	n, rest, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return "", "", 0, false
	}
	at, err1 := strconv.ParseInt(sent, 10, 64)
	idLen, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || idLen < 0 || idLen > len(rest) {
		return "", "", 0, false
	}
	return rest[:idLen], rest[idLen:], at, true
}
