package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// specPath is the document under test, from this package's directory.
const specPath = "../../docs/asyncapi.yaml"

// specURL names the document inside the schema compiler.
const specURL = "file:///docs/asyncapi.yaml"

// spec is docs/asyncapi.yaml compiled: the payload schema of every WebSocket frame type, each
// direction apart, and of every NATS channel.
type spec struct {
	doc      map[string]any
	client   map[string]*jsonschema.Schema // client -> server frames by type
	server   map[string]*jsonschema.Schema // server -> client frames by type
	channels []channel
	c        *jsonschema.Compiler
}

// channel is one NATS channel: the subjects its address matches and its payload schema.
type channel struct {
	name    string
	address string
	subject *regexp.Regexp
	bucket  string // the KV bucket behind a $KV channel
	payload *jsonschema.Schema
	// binary is set for a message whose contentType is deliveryContentType: its payload schema
	// describes the delivery as streams.DecodeDelivery reads it.
	binary bool
}

// deliveryContentType is the contentType of the binary deliveries of gw.<gateway>.deliver.
const deliveryContentType = "application/vnd.natter.delivery"

// loadSpec reads and compiles the document; any part the test cannot resolve fails it.
func loadSpec(t testing.TB) *spec {
	t.Helper()
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", specPath, err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi: %v, want 3.0.0", doc["asyncapi"])
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specURL, inst); err != nil {
		t.Fatal(err)
	}
	s := &spec{doc: doc, c: c, client: map[string]*jsonschema.Schema{}, server: map[string]*jsonschema.Schema{}}
	s.client = s.frames(t, "clientFrames", "receive")
	s.server = s.frames(t, "serverFrames", "send")
	chans, _ := doc["channels"].(map[string]any)
	for name := range chans {
		if name != "ws" {
			s.channels = append(s.channels, s.channel(t, name))
		}
	}
	return s
}

// frames compiles the messages of one WebSocket operation, keyed by their payload's type const.
func (s *spec) frames(t testing.TB, op, action string) map[string]*jsonschema.Schema {
	t.Helper()
	o := s.node(t, "#/operations/"+op)
	if o["action"] != action {
		t.Fatalf("operation %s: action %v, want %s", op, o["action"], action)
	}
	out := map[string]*jsonschema.Schema{}
	msgs, _ := o["messages"].([]any)
	for _, m := range msgs {
		ptr := s.payload(t, m)
		typ, _ := s.pathOf(t, ptr, "properties", "type", "const").(string)
		if typ == "" {
			t.Fatalf("%s: payload %s has no type const", op, ptr)
		}
		if _, dup := out[typ]; dup {
			t.Fatalf("%s: two messages of type %q", op, typ)
		}
		out[typ] = s.compile(t, ptr)
	}
	return out
}

// channel compiles one NATS channel, which must have exactly one message.
func (s *spec) channel(t testing.TB, name string) channel {
	t.Helper()
	ch := s.node(t, "#/channels/"+name)
	msgs, _ := ch["messages"].(map[string]any)
	if len(msgs) != 1 {
		t.Fatalf("channel %s: %d messages, want 1", name, len(msgs))
	}
	var ptr, contentType string
	for _, m := range msgs {
		ptr = s.payload(t, m)
		msg, _ := s.deref(t, m)
		contentType, _ = msg["contentType"].(string)
	}
	addr, _ := ch["address"].(string)
	params, _ := ch["parameters"].(map[string]any)
	bucket, _ := ch["x-natter-bucket"].(string)
	return channel{name: name, address: addr, subject: addressRegexp(t, addr, params), bucket: bucket, payload: s.compile(t, ptr),
		binary: contentType == deliveryContentType}
}

// addressRegexp matches the subjects of an address: a parameter with an enum matches one of
// its values, one with x-natter-pattern that pattern, any other one subject token.
func addressRegexp(t testing.TB, addr string, params map[string]any) *regexp.Regexp {
	t.Helper()
	var b strings.Builder
	b.WriteString("^")
	rest := addr
	for {
		i := strings.Index(rest, "{")
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		j := strings.Index(rest[i:], "}")
		b.WriteString(regexp.QuoteMeta(rest[:i]))
		name := rest[i+1 : i+j]
		p, ok := params[name].(map[string]any)
		if !ok {
			t.Fatalf("address %s: parameter %s is not declared", addr, name)
		}
		switch {
		case p["enum"] != nil:
			var alts []string
			for _, v := range p["enum"].([]any) {
				alts = append(alts, regexp.QuoteMeta(fmt.Sprint(v)))
			}
			b.WriteString("(?:" + strings.Join(alts, "|") + ")")
		case p["x-natter-pattern"] != nil:
			b.WriteString("(?:" + p["x-natter-pattern"].(string) + ")")
		default:
			b.WriteString("[A-Za-z0-9_-]{1,64}")
		}
		rest = rest[i+j+1:]
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// payload follows a message reference to its payload and returns the payload schema's pointer.
func (s *spec) payload(t testing.TB, msg any) string {
	t.Helper()
	m, _ := s.deref(t, msg)
	p, ok := m["payload"].(map[string]any)
	if !ok {
		t.Fatalf("message %v has no payload", msg)
	}
	ref, ok := p["$ref"].(string)
	if !ok {
		t.Fatalf("payload %v is not a $ref into components/schemas", p)
	}
	return ref
}

// deref follows $refs from n to an object, returning it and the last pointer followed.
func (s *spec) deref(t testing.TB, n any) (map[string]any, string) {
	t.Helper()
	var ptr string
	for range 10 {
		m, ok := n.(map[string]any)
		if !ok {
			t.Fatalf("%v is not an object", n)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, ptr
		}
		ptr, n = ref, s.node(t, ref)
	}
	t.Fatalf("$ref chain too long at %s", ptr)
	return nil, ""
}

// node returns the object at a local JSON pointer such as #/components/schemas/Welcome.
func (s *spec) node(t testing.TB, ptr string) map[string]any {
	t.Helper()
	m, ok := s.pathOf(t, ptr).(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object in %s", ptr, specPath)
	}
	return m
}

// pathOf walks a local pointer, then the extra keys.
func (s *spec) pathOf(t testing.TB, ptr string, more ...string) any {
	t.Helper()
	if !strings.HasPrefix(ptr, "#/") {
		t.Fatalf("%q is not a local pointer", ptr)
	}
	var n any = s.doc
	for _, k := range append(strings.Split(ptr[2:], "/"), more...) {
		m, ok := n.(map[string]any)
		if !ok {
			return nil
		}
		n = m[k]
	}
	return n
}

func (s *spec) compile(t testing.TB, ptr string) *jsonschema.Schema {
	t.Helper()
	sch, err := s.c.Compile(specURL + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	return sch
}

// channelOf is the channel whose address matches subject, or nil.
func (s *spec) channelOf(subject string) *channel {
	for i := range s.channels {
		if s.channels[i].subject.MatchString(subject) {
			return &s.channels[i]
		}
	}
	return nil
}

// check validates one JSON document against a schema, naming what it was on failure.
func check(t testing.TB, sch *jsonschema.Schema, what string, data []byte) {
	t.Helper()
	v := decode(t, data)
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s does not match docs/asyncapi.yaml: %s\n%v", what, data, err)
	}
}

// decode parses JSON for the validator, numbers kept exact.
func decode(t testing.TB, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not JSON: %v: %s", err, data)
	}
	return v
}

// frameType reads the type field of a frame.
func frameType(data []byte) string {
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(data, &f)
	return f.Type
}

// checkServerFrame validates a frame the server sent against the schema of its type.
func (s *spec) checkServerFrame(t testing.TB, who string, data []byte) string {
	t.Helper()
	typ := frameType(data)
	sch, ok := s.server[typ]
	if !ok {
		t.Errorf("%s received a frame of type %q that docs/asyncapi.yaml does not list: %s", who, typ, data)
		return typ
	}
	check(t, sch, who+" received "+typ, data)
	return typ
}

// checkClientFrame validates a frame the client sends against the schema of its type.
func (s *spec) checkClientFrame(t testing.TB, who string, data []byte) {
	t.Helper()
	typ := frameType(data)
	sch, ok := s.client[typ]
	if !ok {
		t.Errorf("%s sends a frame of type %q that docs/asyncapi.yaml does not list: %s", who, typ, data)
		return
	}
	check(t, sch, who+" sends "+typ, data)
}

// TestSpecLoads compiles every schema the document names.
func TestSpecLoads(t *testing.T) {
	s := loadSpec(t)
	if len(s.client) != 9 || len(s.server) != 15 {
		t.Errorf("%d client and %d server frame types, want 9 and 15", len(s.client), len(s.server))
	}
	schemas, _ := s.pathOf(t, "#/components/schemas").(map[string]any)
	for name := range schemas {
		s.compile(t, "#/components/schemas/"+name)
	}
}
