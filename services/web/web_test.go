package web

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedFiles(t *testing.T) {
	for name, ct := range map[string]string{
		Index:       "text/html; charset=utf-8",
		"app.js":    "text/javascript; charset=utf-8",
		"style.css": "text/css; charset=utf-8",
	} {
		f, ok := Files[name]
		if !ok {
			t.Fatalf("%s is not embedded", name)
		}
		if f.ContentType != ct || len(f.Body) == 0 || !strings.HasPrefix(f.ETag, `"`) || !strings.HasSuffix(f.ETag, `"`) {
			t.Errorf("%s: %q, %d bytes, ETag %s", name, f.ContentType, len(f.Body), f.ETag)
		}
	}
	if Files["app.js"].ETag == Files["style.css"].ETag {
		t.Error("two files share an ETag")
	}
}

func TestLoadRefuses(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no page":           {"static/app.js": {Data: []byte("x")}},
		"unknown extension": {"static/index.html": {Data: []byte("x")}, "static/notes.txt": {Data: []byte("x")}},
	} {
		if _, err := load(fsys); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	files, err := load(fstest.MapFS{"static/index.html": {Data: []byte("<p>")}})
	if err != nil || files[Index].ContentType != "text/html; charset=utf-8" {
		t.Errorf("a page alone: %v, %v", files, err)
	}
}
