package api

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/origin"
)

// corsAnswer is what a browser looks at in an answer.
type corsAnswer struct {
	status int
	header http.Header
	code   string // the error code of a JSON error body
	body   []byte
}

// corsDo sends method path with the Origin header o ("" sends none), a bearer token if not empty,
// and for OPTIONS a preflight's Access-Control-Request-* headers, as a browser would before a
// cross-origin POST with a JSON body and a token.
func (e *env) corsDo(t *testing.T, method, path, o, token string) corsAnswer {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o != "" {
		req.Header.Set("Origin", o)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodOptions {
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return readCorsAnswer(t, resp)
}

// readCorsAnswer reads and closes resp, with the error code of its body if it has one.
func readCorsAnswer(t *testing.T, resp *http.Response) corsAnswer {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := corsAnswer{status: resp.StatusCode, header: resp.Header, body: raw}
	var body errorBody
	if json.Unmarshal(raw, &body) == nil {
		a.code = string(body.Error.Code)
	}
	return a
}

// corsHeaderNames are the answer's Access-Control-* headers.
func (a corsAnswer) corsHeaderNames() []string {
	var names []string
	for k := range a.header {
		if strings.HasPrefix(k, "Access-Control-") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func (a corsAnswer) varies() bool {
	for _, v := range a.header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Origin") {
				return true
			}
		}
	}
	return false
}

// wantPreflightAllowed checks a preflight answer that lets the browser go on with allowOrigin.
func wantPreflightAllowed(t *testing.T, a corsAnswer, allowOrigin string) {
	t.Helper()
	h := a.header
	if a.status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != allowOrigin ||
		h.Get("Access-Control-Allow-Methods") != "GET,HEAD,POST,PUT,PATCH,DELETE" ||
		h.Get("Access-Control-Allow-Headers") != "Authorization,Content-Type" ||
		h.Get("Access-Control-Max-Age") != "600" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight: %d %v; want 204 allowing %s, the API's methods and headers, no credentials", a.status, h, allowOrigin)
	}
}

// TestCORSAllowsAnyOriginByDefault: with no list a page of any origin may call the API; the
// answer says "*", and no credentials (the API reads bearer tokens, not cookies).
func TestCORSAllowsAnyOriginByDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, token := e.user(t, "alice")
	const page = "https://anywhere.example.org"

	wantPreflightAllowed(t, e.corsDo(t, "OPTIONS", "/v1/conversations/direct", page, ""), "*")
	for _, tc := range []struct {
		name, origin, token string
		status              int
		allow               string
	}{
		{"GET from a page", page, token, http.StatusOK, "*"},
		{"an error to a page", page, "", http.StatusUnauthorized, "*"},
		{"GET without Origin", "", token, http.StatusOK, ""},
	} {
		a := e.corsDo(t, "GET", "/v1/me", tc.origin, tc.token)
		if a.status != tc.status || a.header.Get("Access-Control-Allow-Origin") != tc.allow || a.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: %d %v; want %d with Access-Control-Allow-Origin %q", tc.name, a.status, a.header, tc.status, tc.allow)
		}
	}
}

// TestCORSAnswersOnlyListedOrigins: with a list, a listed origin is echoed (never "*") on
// preflights, answers and error answers alike; any other origin gets no CORS header at all, a
// 403 to its preflight, and its other requests are served as without an Origin.
func TestCORSAnswersOnlyListedOrigins(t *testing.T) {
	t.Parallel()
	p, err := origin.Parse("https://chat.example.com, http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Origins = p })
	_, token := e.user(t, "alice")
	const listed, other, foreign = "https://chat.example.com", "http://localhost:3000", "https://evil.example.net"

	for _, o := range []string{listed, other} {
		a := e.corsDo(t, "OPTIONS", "/v1/conversations/direct", o, "")
		wantPreflightAllowed(t, a, o)
		if !a.varies() {
			t.Errorf("preflight from %s: no Vary: Origin (%v)", o, a.header)
		}
	}
	for _, tc := range []struct {
		name, origin, token string
		status              int
		allow               string
	}{
		{"GET from a listed origin", listed, token, http.StatusOK, listed},
		{"an error to a listed origin", listed, "", http.StatusUnauthorized, listed},
		{"GET from another listed origin", other, token, http.StatusOK, other},
		{"GET from a foreign origin", foreign, token, http.StatusOK, ""},
		{"GET from the listed host on http", "http://chat.example.com", token, http.StatusOK, ""},
		{"GET without Origin", "", token, http.StatusOK, ""},
	} {
		a := e.corsDo(t, "GET", "/v1/me", tc.origin, tc.token)
		if a.status != tc.status || a.header.Get("Access-Control-Allow-Origin") != tc.allow || !a.varies() {
			t.Errorf("%s: %d %v; want %d with Access-Control-Allow-Origin %q and Vary: Origin", tc.name, a.status, a.header, tc.status, tc.allow)
		}
		if tc.allow == "" && len(a.corsHeaderNames()) > 0 {
			t.Errorf("%s: CORS headers %v, want none", tc.name, a.corsHeaderNames())
		}
	}

	a := e.corsDo(t, "OPTIONS", "/v1/conversations/direct", foreign, "")
	if a.status != http.StatusForbidden || a.code != string(CodeOriginNotAllowed) || len(a.corsHeaderNames()) > 0 || !a.varies() {
		t.Errorf("preflight from a foreign origin: %d %q %v; want 403 %s without CORS headers", a.status, a.code, a.header, CodeOriginNotAllowed)
	}
}

// TestCORSOnAnswersFiberGivesBeforeTheRoutes: an answer the HTTP server gives before any route
// or middleware runs (a body over the limit, 413) carries the CORS headers for an allowed origin
// too, so the page reads the coded error instead of an opaque network error; and every answer
// to an allowed origin exposes Retry-After, which a page could not read otherwise.
func TestCORSOnAnswersFiberGivesBeforeTheRoutes(t *testing.T) {
	t.Parallel()
	p, err := origin.Parse("https://chat.example.com")
	if err != nil {
		t.Fatal(err)
	}
	listed := newEnv(t, func(c *Config) { c.Origins = p; c.BodyLimit = 1 << 10 })
	anyOrigin := newEnv(t, func(c *Config) { c.BodyLimit = 1 << 10 })
	for _, tc := range []struct {
		name      string
		e         *env
		origin    string
		wantAllow string
	}{
		{"a listed origin", listed, "https://chat.example.com", "https://chat.example.com"},
		{"a foreign origin", listed, "https://evil.example.net", ""},
		{"any origin allowed", anyOrigin, "https://anywhere.example.org", "*"},
	} {
		a := tc.e.tooLarge(t, tc.origin)
		if a.status != http.StatusRequestEntityTooLarge || a.code != string(CodeBodyTooLarge) {
			t.Fatalf("%s: %d %s, want 413 %s", tc.name, a.status, a.body, CodeBodyTooLarge)
		}
		if got := a.header.Get("Access-Control-Allow-Origin"); got != tc.wantAllow {
			t.Errorf("%s, 413: Access-Control-Allow-Origin %q, want %q (%v)", tc.name, got, tc.wantAllow, a.header)
		}
		if tc.wantAllow == "" && len(a.corsHeaderNames()) > 0 {
			t.Errorf("%s, 413: CORS headers %v, want none", tc.name, a.corsHeaderNames())
		}
		if tc.wantAllow != "" && tc.wantAllow != "*" && !a.varies() {
			t.Errorf("%s, 413: no Vary: Origin (%v)", tc.name, a.header)
		}
		if tc.wantAllow != "" && a.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
			t.Errorf("%s, 413: Access-Control-Expose-Headers %q, want Retry-After", tc.name, a.header.Get("Access-Control-Expose-Headers"))
		}
		r := tc.e.corsDo(t, "GET", "/v1/me", tc.origin, "")
		if want := map[bool]string{true: "Retry-After", false: ""}[tc.wantAllow != ""]; r.header.Get("Access-Control-Expose-Headers") != want {
			t.Errorf("%s, 401: Access-Control-Expose-Headers %q, want %q", tc.name, r.header.Get("Access-Control-Expose-Headers"), want)
		}
	}
}

// tooLarge posts a body over the limit from origin o. The server answers 413 and closes the
// connection without reading the body, so the client, still writing it, may see the connection
// drop before the answer: it asks again, as a client would, until it reads one.
func (e *env) tooLarge(t *testing.T, o string) corsAnswer {
	t.Helper()
	body := strings.Repeat("x", 4<<10)
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest("POST", e.base+"/v1/signup", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", o)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if err != nil && attempt < 5 {
			t.Logf("attempt %d: %v", attempt, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return readCorsAnswer(t, resp)
	}
}
