package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// specFile is the OpenAPI document these tests hold the server to.
const specFile = "../../docs/openapi.yaml"

// specURL names the document inside the schema compiler; its $refs are JSON pointers into it.
const specURL = "urn:natter:openapi"

var specMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// apiSpec is the parsed docs/openapi.yaml with every response schema compiled (draft 2020-12,
// formats asserted). validate checks one real answer against it and records the operation as
// exercised.
type apiSpec struct {
	doc     map[string]any
	ops     map[string]map[string]any // "GET /v1/conversations/{id}" -> the operation object
	paths   []specPath
	schemas map[string]*jsonschema.Schema // JSON pointer of a response -> its body schema
	media   map[string][]string           // JSON pointer of a response that is not JSON -> its media types
	bodies  map[string]*jsonschema.Schema // operation -> its request body schema

	mu        sync.Mutex
	exercised map[string]bool // operations answered with a 2xx that validated
}

type specPath struct {
	template string
	re       *regexp.Regexp
	params   int
}

var (
	specOnce sync.Once
	specVal  *apiSpec
	specErr  error
)

// loadSpec parses and compiles the spec once per test binary; a document that does not parse, or
// a response schema that does not compile (a bad $ref, say), fails the test.
func loadSpec(t *testing.T) *apiSpec {
	t.Helper()
	specOnce.Do(func() { specVal, specErr = parseSpec() })
	if specErr != nil {
		t.Fatalf("%s: %v", specFile, specErr)
	}
	return specVal
}

func parseSpec() (*apiSpec, error) {
	raw, err := os.ReadFile(specFile)
	if err != nil {
		return nil, err
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, err
	}
	// Through JSON, so that numbers are json.Number and maps map[string]any, as the compiler wants.
	js, err := json.Marshal(y)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, err
	}
	doc, ok := v.(map[string]any)
	if !ok || doc["openapi"] != "3.1.0" {
		return nil, fmt.Errorf("not an OpenAPI 3.1.0 document")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(specURL, doc); err != nil {
		return nil, err
	}
	s := &apiSpec{doc: doc, ops: map[string]map[string]any{}, schemas: map[string]*jsonschema.Schema{}, media: map[string][]string{}, bodies: map[string]*jsonschema.Schema{}, exercised: map[string]bool{}}
	paths, _ := doc["paths"].(map[string]any)
	for tmpl, item := range paths {
		item, _ := item.(map[string]any)
		re := "^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		s.paths = append(s.paths, specPath{tmpl, regexp.MustCompile(re), strings.Count(tmpl, "{")})
		for _, m := range specMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			key := strings.ToUpper(m) + " " + tmpl
			s.ops[key] = op
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				return nil, fmt.Errorf("%s: no responses", key)
			}
			if op["requestBody"] != nil {
				sch, err := c.Compile(specURL + "#/paths/" + escapePointer(tmpl) + "/" + m + "/requestBody/content/application~1json/schema")
				if err != nil {
					return nil, fmt.Errorf("%s request body: %w", key, err)
				}
				s.bodies[key] = sch
			}
			for status := range responses {
				ptr, resp, err := s.resolve("/paths/" + escapePointer(tmpl) + "/" + m + "/responses/" + status)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", key, status, err)
				}
				if err := s.compileBody(c, ptr, resp); err != nil {
					return nil, fmt.Errorf("%s %s: %w", key, status, err)
				}
			}
		}
	}
	// Shared answers not tied to one operation (origin_not_allowed) compile too.
	components, _ := doc["components"].(map[string]any)
	shared, _ := components["responses"].(map[string]any)
	for name := range shared {
		ptr, resp, err := s.resolve("/components/responses/" + name)
		if err == nil {
			err = s.compileBody(c, ptr, resp)
		}
		if err != nil {
			return nil, fmt.Errorf("components/responses/%s: %w", name, err)
		}
	}
	// Literal paths before templated ones: /v1/conversations/direct before /v1/conversations/{id}.
	slices.SortFunc(s.paths, func(a, b specPath) int { return a.params - b.params })
	return s, nil
}

func (s *apiSpec) compileBody(c *jsonschema.Compiler, ptr string, resp map[string]any) error {
	content, _ := resp["content"].(map[string]any)
	if content == nil {
		return nil
	}
	media, _ := content["application/json"].(map[string]any)
	if media == nil {
		// Not JSON (the web client's files): the answer's Content-Type must be one of these.
		for mt := range content {
			s.media[ptr] = append(s.media[ptr], mt)
		}
		return nil
	}
	if media["schema"] == nil {
		return fmt.Errorf("content without an application/json schema")
	}
	sch, err := c.Compile(specURL + "#" + ptr + "/content/application~1json/schema")
	if err != nil {
		return err
	}
	s.schemas[ptr] = sch
	return nil
}

// resolve is the object at ptr (a response or a header), following one $ref into components.
func (s *apiSpec) resolve(ptr string) (string, map[string]any, error) {
	for range 2 {
		v, err := s.at(ptr)
		if err != nil {
			return "", nil, err
		}
		obj, _ := v.(map[string]any)
		ref, ok := obj["$ref"].(string)
		if !ok {
			return ptr, obj, nil
		}
		ptr = strings.TrimPrefix(ref, "#")
	}
	return "", nil, fmt.Errorf("%s: a $ref to a $ref", ptr)
}

// at is the value at a JSON pointer into the document.
func (s *apiSpec) at(ptr string) (any, error) {
	var v any = s.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		obj, ok := v.(map[string]any)
		if !ok || obj[tok] == nil {
			return nil, fmt.Errorf("no %s in the document", ptr)
		}
		v = obj[tok]
	}
	return v, nil
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// operation is the "METHOD /template" of the spec that serves method and path (a query is
// ignored); "" if none does.
func (s *apiSpec) operation(method, path string) string {
	path, _, _ = strings.Cut(path, "?")
	for _, p := range s.paths {
		if p.re.MatchString(path) && s.ops[method+" "+p.template] != nil {
			return method + " " + p.template
		}
	}
	return ""
}

// validate checks an answer to method and path against the spec: the status must be one the
// operation lists, the required headers present, and the body valid against that status's
// schema (or empty where the spec gives no content). A request body the server accepted (2xx)
// must be valid against the operation's request schema: the spec may not refuse what the server
// takes.
func (s *apiSpec) validate(method, path string, request []byte, status int, header http.Header, body []byte) error {
	op := s.operation(method, path)
	if op == "" {
		return fmt.Errorf("%s %s: no operation in the spec", method, path)
	}
	_, tmpl, _ := strings.Cut(op, " ")
	ptr, resp, err := s.resolve("/paths/" + escapePointer(tmpl) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(status))
	if err != nil {
		return fmt.Errorf("%s: status %d is not in the spec: %s", op, status, body)
	}
	if err := s.check(ptr, resp, header, body); err != nil {
		return fmt.Errorf("%s %d: %w", op, status, err)
	}
	if status < 300 {
		if sch := s.bodies[op]; sch != nil {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(request))
			if err == nil {
				err = sch.Validate(v)
			}
			if err != nil {
				return fmt.Errorf("%s: request %s accepted but invalid: %w", op, request, err)
			}
		}
		s.mu.Lock()
		s.exercised[op] = true
		s.mu.Unlock()
	}
	return nil
}

// validateComponent checks an answer against components/responses/name.
func (s *apiSpec) validateComponent(name string, header http.Header, body []byte) error {
	ptr, resp, err := s.resolve("/components/responses/" + name)
	if err != nil {
		return err
	}
	if err := s.check(ptr, resp, header, body); err != nil {
		return fmt.Errorf("components/responses/%s: %w", name, err)
	}
	return nil
}

func (s *apiSpec) check(ptr string, resp map[string]any, header http.Header, body []byte) error {
	headers, _ := resp["headers"].(map[string]any)
	for name := range headers {
		_, h, err := s.resolve(ptr + "/headers/" + escapePointer(name))
		if err != nil {
			return err
		}
		if h["required"] == true && header.Get(name) == "" {
			return fmt.Errorf("header %s is required", name)
		}
	}
	if types := s.media[ptr]; types != nil {
		mt, _, _ := strings.Cut(header.Get("Content-Type"), ";")
		if !slices.Contains(types, mt) {
			return fmt.Errorf("content type %q, want one of %v", header.Get("Content-Type"), types)
		}
		return nil
	}
	sch := s.schemas[ptr]
	if sch == nil {
		if len(body) != 0 {
			return fmt.Errorf("the spec gives no content, got %q", body)
		}
		return nil
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("content type %q, want application/json", ct)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body %q: %w", body, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("body %s: %w", body, err)
	}
	return nil
}

// unexercised lists the operations no 2xx answer has been validated for, sorted.
func (s *apiSpec) unexercised() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for op := range s.ops {
		if !s.exercised[op] {
			out = append(out, op)
		}
	}
	slices.Sort(out)
	return out
}
