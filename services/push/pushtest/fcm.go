// Package pushtest is a local server that speaks the FCM HTTP v1 API
// (POST /v1/projects/{project}/messages:send), for tests of natter's push: it records every request
// exactly as it arrived and answers as the test scripts it (success by default).
package pushtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// AccessToken is the bearer token the server expects (TokenSource gives it).
const AccessToken = "pushtest-access-token"

// Request is one request as the server received it.
type Request struct {
	Method        string
	Path          string
	Authorization string
	ContentType   string
	Body          []byte
	// Message is the body's "message" object, decoded loosely for assertions (nil if the body
	// was not {"message":{...}}).
	Message map[string]any
	At      time.Time
}

// Str returns the string at a path of nested objects in Message ("android", "collapse_key").
func (r Request) Str(path ...string) string {
	var v any = r.Message
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	}
	return ""
}

// Reply is a scripted answer; a zero Reply is success.
type Reply struct {
	Status int
	Header http.Header
	Body   string
	// Drop closes the connection without answering (a network error).
	Drop bool
}

// Error is an FCM v1 error answer: status, canonical status ("NOT_FOUND") and FCM error code
// ("UNREGISTERED"; empty for none).
func Error(status int, canonical, fcmCode, message string) Reply {
	details := "[]"
	if fcmCode != "" {
		details = fmt.Sprintf(`[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":%q}]`, fcmCode)
	}
	return Reply{Status: status, Header: http.Header{"Content-Type": {"application/json; charset=UTF-8"}},
		Body: fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q,"details":%s}}`, status, message, canonical, details)}
}

// FCM is the fake FCM server.
type FCM struct {
	Server  *httptest.Server
	Project string

	mu     sync.Mutex
	reqs   []Request
	script func(n int, r Request) Reply
	got    chan Request
	tr     *http.Transport
	tokens int
}

// New starts a fake FCM for project; it stops when the test ends.
func New(t testing.TB, project string) *FCM {
	f := &FCM{Project: project, got: make(chan Request, 1000), tr: &http.Transport{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.tr.CloseIdleConnections()
		f.Server.Close()
	})
	return f
}

// Endpoint is the API base URL to configure (push.Config.Endpoint).
func (f *FCM) Endpoint() string { return f.Server.URL + "/v1" }

// SendPath is the path every send must use.
func (f *FCM) SendPath() string { return "/v1/projects/" + f.Project + "/messages:send" }

// TokenSource is a static source of AccessToken (for push.Config.TokenSource).
func (f *FCM) TokenSource() oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: AccessToken, TokenType: "Bearer"})
}

// Transport is a transport whose idle connections are closed when the test ends (for
// push.Config.Transport), so that no keep-alive goroutine outlives the test.
func (f *FCM) Transport() http.RoundTripper { return f.tr }

// Script sets how the server answers request n (0-based).
func (f *FCM) Script(fn func(n int, r Request) Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = fn
}

// Requests returns every request so far.
func (f *FCM) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// Next waits for the next request.
func (f *FCM) Next(t testing.TB, timeout time.Duration) Request {
	t.Helper()
	select {
	case r := <-f.got:
		return r
	case <-time.After(timeout):
		t.Fatalf("fcm: no request within %s", timeout)
		return Request{}
	}
}

// None requires that no request arrives within d.
func (f *FCM) None(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case r := <-f.got:
		t.Fatalf("fcm: unexpected request %s %s: %s", r.Method, r.Path, r.Body)
	case <-time.After(d):
	}
}

// TokenURL is the server's OAuth token endpoint: a service-account file whose token_uri is this
// URL (see ServiceAccount) gets AccessToken from it, so the credentials-file path runs for real.
func (f *FCM) TokenURL() string { return f.Server.URL + "/token" }

// ServiceAccount is the content of a service-account file for f.Project with a fresh key and
// token_uri TokenURL.
func (f *FCM) ServiceAccount(t testing.TB) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": f.Project, "private_key_id": "pushtest",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "push@" + f.Project + ".iam.gserviceaccount.com", "client_id": "1",
		"token_uri": f.TokenURL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TokenRequests counts the OAuth token requests served.
func (f *FCM) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens
}

func (f *FCM) serve(w http.ResponseWriter, hr *http.Request) {
	body, _ := io.ReadAll(hr.Body)
	if hr.URL.Path == "/token" {
		f.mu.Lock()
		f.tokens++
		f.mu.Unlock()
		if hr.Method != http.MethodPost || !strings.Contains(string(body), "assertion=") {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, AccessToken)
		return
	}
	r := Request{Method: hr.Method, Path: hr.URL.Path, Authorization: hr.Header.Get("Authorization"),
		ContentType: hr.Header.Get("Content-Type"), Body: body, At: time.Now()}
	var env struct {
		Message map[string]any `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		r.Message = env.Message
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, r)
	script := f.script
	f.mu.Unlock()
	f.got <- r

	var reply Reply
	switch {
	case hr.Method != http.MethodPost || r.Path != f.SendPath():
		reply = Error(http.StatusNotFound, "NOT_FOUND", "", "no such method")
	case r.Authorization != "Bearer "+AccessToken:
		reply = Error(http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.")
	case r.Message == nil || r.Str("token") == "":
		reply = Error(http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument.")
	case script != nil:
		reply = script(n, r)
	}
	if reply.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
	}
	for k, vs := range reply.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if reply.Status == 0 {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, f.Project, n+1)
		return
	}
	w.WriteHeader(reply.Status)
	_, _ = io.Copy(w, strings.NewReader(reply.Body))
}
