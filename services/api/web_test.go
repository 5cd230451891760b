package api

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/natter-chat/natter/services/web"
)

// get sends a GET (or HEAD) with headers and returns the status, headers and body.
func (e *env) get(t *testing.T, method, path string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// TestWebClientIsServed: the page and every file it references come from the embedded files
// with their content types, ETags that revalidate to 304, no-cache, nosniff, and a CSP on the
// page; names that are not the page's files are 404 not_found. Every answer matches the spec.
func TestWebClientIsServed(t *testing.T) {
	t.Parallel()
	spec := loadSpec(t)
	e := newEnv(t)

	status, h, page := e.get(t, http.MethodGet, "/", nil)
	if status != http.StatusOK || string(page) != string(web.Files[web.Index].Body) {
		t.Fatalf("GET /: %d, %d bytes", status, len(page))
	}
	if err := spec.validate("GET", "/", nil, status, h, page); err != nil {
		t.Error(err)
	}
	for name, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-cache",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": web.ContentSecurityPolicy,
		"Referrer-Policy":         "no-referrer",
		"ETag":                    web.Files[web.Index].ETag,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("GET / %s: %q, want %q", name, got, want)
		}
	}

	// Every file the page references is served, with its own type and validator.
	refs := regexp.MustCompile(`(?:src|href)="/assets/([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 2 {
		t.Fatalf("the page references %d assets, want the script and the style sheet", len(refs))
	}
	for _, ref := range refs {
		f, ok := web.Files[ref[1]]
		if !ok {
			t.Fatalf("the page references /assets/%s, which is not embedded", ref[1])
		}
		path := "/assets/" + ref[1]
		status, h, body := e.get(t, http.MethodGet, path, nil)
		if status != http.StatusOK || string(body) != string(f.Body) || h.Get("Content-Type") != f.ContentType || h.Get("ETag") != f.ETag {
			t.Errorf("GET %s: %d, %d bytes, %q, ETag %q", path, status, len(body), h.Get("Content-Type"), h.Get("ETag"))
		}
		if err := spec.validate("GET", path, nil, status, h, body); err != nil {
			t.Error(err)
		}
		// A cached copy revalidates: the current ETag (strong or weak, alone or in a list) gets
		// 304 without a body; an old one gets the file.
		for _, inm := range []string{f.ETag, "W/" + f.ETag, `"old", ` + f.ETag, "*"} {
			status, h, body := e.get(t, http.MethodGet, path, map[string]string{"If-None-Match": inm})
			if status != http.StatusNotModified || len(body) != 0 || h.Get("ETag") != f.ETag {
				t.Errorf("GET %s If-None-Match %s: %d, %d bytes, ETag %q", path, inm, status, len(body), h.Get("ETag"))
			}
			if err := spec.validate("GET", path, nil, status, h, body); err != nil {
				t.Error(err)
			}
		}
		if status, _, body := e.get(t, http.MethodGet, path, map[string]string{"If-None-Match": `"old"`}); status != http.StatusOK || len(body) != len(f.Body) {
			t.Errorf("GET %s with an old ETag: %d, %d bytes", path, status, len(body))
		}
	}

	// HEAD answers the headers only.
	if status, h, body := e.get(t, http.MethodHead, "/", nil); status != http.StatusOK || len(body) != 0 || h.Get("ETag") == "" {
		t.Errorf("HEAD /: %d, %d bytes, ETag %q", status, len(body), h.Get("ETag"))
	}

	// Only the page's files: not the page under /assets/, not other paths.
	for _, path := range []string{"/assets/index.html", "/assets/nope.js", "/assets/..%2fweb.go", "/index.html", "/app.js"} {
		status, h, body := e.get(t, http.MethodGet, path, nil)
		if status != http.StatusNotFound || !strings.Contains(string(body), `"code":"not_found"`) {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
		if strings.HasPrefix(path, "/assets/") {
			if err := spec.validate("GET", path, nil, status, h, body); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestETagMatches(t *testing.T) {
	const etag = `"abc"`
	for header, want := range map[string]bool{
		`"abc"`:          true,
		`W/"abc"`:        true,
		`"x", "abc"`:     true,
		` "x" ,W/"abc" `: true,
		`*`:              true,
		`"abcd"`:         false,
		`abc`:            false,
		``:               false,
		`"x", "y"`:       false,
	} {
		if got := etagMatches(header, etag); got != want {
			t.Errorf("etagMatches(%q) = %v, want %v", header, got, want)
		}
	}
}
