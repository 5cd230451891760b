// Package web is natter's browser client: the files under static/, embedded in the binary and
// served by the HTTP API at "/" (the page) and "/assets/:name" (its script and style sheet).
//
// static/app.js is generated: esbuild bundles the TypeScript sources under src/ with the SDK
// in sdk/js. It is committed so that a plain `go build` needs no JavaScript tool chain;
// test/browser checks that it is what its sources build to (see README.md in this directory).
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// File is one embedded file, ready to serve.
type File struct {
	Name        string // as in the URL: "index.html", "app.js", "style.css"
	ContentType string // with charset for text
	ETag        string // strong validator: a quoted hash of Body
	Body        []byte
}

// Index is the page's name among Files.
const Index = "index.html"

// ContentSecurityPolicy is sent with the page: its own script and style only (no inline code,
// no eval), connections to this origin (the API) and to any WebSocket gateway (the URL comes
// from discovery and may be another host or port), and no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are fixed here rather than read from the system's MIME tables, which differ
// between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Files are the embedded files by name. The map is built once; do not change it.
var Files = mustLoad()

func mustLoad() map[string]File {
	files, err := load(static)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time: a failure here is a build defect
	}
	return files
}

func load(fsys fs.FS) (map[string]File, error) {
	files := map[string]File{}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("web: read %s: %w", p, err)
		}
		name := strings.TrimPrefix(p, "static/")
		ct := contentTypes[path.Ext(name)]
		if ct == "" {
			return fmt.Errorf("web: %s: no content type for its extension", p)
		}
		sum := sha256.Sum256(body)
		files[name] = File{Name: name, ContentType: ct, Body: body,
			ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := files[Index]; !ok {
		return nil, fmt.Errorf("web: static/%s is missing", Index)
	}
	return files, nil
}
