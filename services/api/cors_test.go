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
