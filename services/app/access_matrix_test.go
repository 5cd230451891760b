package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// The access matrix: every route of docs/openapi.yaml (which TestSpecRoutesMatchServer keeps
// equal to the routes the API serves) and every client frame type of sdk/go/protocol, asked by
// every kind of principal, with the outcome of each cell derived from a few rules. A route or
// frame type without a rule fails the test.
const (
	specPath     = "../../docs/openapi.yaml"
	protocolPath = "../../sdk/go/protocol/protocol.go"
)

// The principals, in the order each route is asked (those that may change the group last).
var principals = []string{
	"revoked", "deleted", "expired", "foreign-signed", // tokens the API and gateway must refuse
	"stranger", "removed", "blocker", "blocked", "member", "owner",
}

// badToken: principals whose token is refused before anything else is looked at.
func badToken(p string) bool {
	return slices.Contains([]string{"revoked", "deleted", "expired", "foreign-signed"}, p)
}

// outsider: principals with no access to the group now (the removed member keeps its history up to
// the removal, which the routes that show it say with an explicit want).
func outsider(p string) bool { return p == "stranger" || p == "removed" }

// matrixSecret signs the access tokens of the matrix's natter, so that the test can issue an
// expired one for a real session.
var matrixSecret = []byte(strings.Repeat("m", auth.MinSecretBytes))

// world is the fixture one route or frame type is asked in: a group of owner, member, blocker
// (who blocked the owner), blocked (whom the owner blocked), extra (a member acted upon), a member
// removed after the first message, a member who then deletes their account, and a stranger;
// then a rename and a second message only current members may see.
type world struct {
	s       *apptest.System
	n       int
	users   map[string]apptest.User // by principal; also "extra" and "newbie" (never a member)
	tokens  map[string]string       // by principal
	group   string
	missing string // a conversation id that does not exist
	before  uint64 // seq of the owner's message every member saw
	after   uint64 // seq of the owner's message after the removal and the blocks
	words   []string
	// secrets are the strings no answer to a principal may contain.
	secrets map[string][]string
	// ownerSession is a second login session of the owner (a session-scoped object).
	ownerSession string
}

const missingConversation = "01NOSUCHCONVERSATI0N00000A"

func newWorld(t *testing.T, s *apptest.System, n int) *world {
	t.Helper()
	parent := s.T
	s.T = t
	defer func() { s.T = parent }()
	w := &world{s: s, n: n, users: map[string]apptest.User{}, tokens: map[string]string{}, missing: missingConversation}
	for _, name := range []string{"owner", "member", "removed", "blocker", "blocked", "stranger", "extra", "newbie", "deleted"} {
		w.users[name] = s.SignUp(fmt.Sprintf("%s%d", name, n))
	}
	u := w.users
	name := fmt.Sprintf("room%d", n)
	w.group = createGroup(s, u["owner"], name, u["member"], u["removed"], u["blocker"], u["blocked"], u["extra"], u["deleted"]).Conversation.ID
	ws := live(s, u["owner"], "o")
	beforeText := fmt.Sprintf("before%dword", n)
	ack := sendText(ws, w.group, "b", beforeText)
	if ack.Type != protocol.TypeAck {
		t.Fatalf("owner's first message: %+v", ack)
	}
	w.before = ack.Seq
	s.Do("DELETE", "/v1/conversations/"+w.group+"/members/"+u["removed"].ID, u["owner"].Token, nil, http.StatusOK, nil)
	s.Do("PUT", "/v1/blocks/"+u["owner"].ID, u["blocker"].Token, nil, http.StatusNoContent, nil)
	s.Do("PUT", "/v1/blocks/"+u["blocked"].ID, u["owner"].Token, nil, http.StatusNoContent, nil)
	renamed := fmt.Sprintf("renamed%dword", n)
	s.Do("PATCH", "/v1/conversations/"+w.group, u["owner"].Token, map[string]string{"name": renamed}, http.StatusOK, nil)
	afterText := fmt.Sprintf("after%dword", n)
	after := sendText(ws, w.group, "a", afterText)
	if after.Type != protocol.TypeAck {
		t.Fatalf("owner's second message: %+v", after)
	}
	_ = ws.Conn.CloseNow()
	// The owner's history shows the second message: an answer that should not, could.
	waitFor(t, func() bool {
		status, body := apptest.Request(t, "GET", s.APIURL+"/v1/conversations/"+w.group+"/messages", u["owner"].Token, nil)
		return status == http.StatusOK && bytes.Contains(body, []byte(afterText))
	}, "the owner's second message in the owner's history")
	w.words, w.after = []string{beforeText, afterText}, after.Seq

	// The four refused tokens: a revoked session of the member, the token of a member who deleted
	// their account, and the owner's real session expired or signed with another key.
	second := s.LogIn(u["member"])
	s.Do("DELETE", "/v1/sessions/"+second.SessionID, u["member"].Token, nil, http.StatusNoContent, nil)
	s.Do("DELETE", "/v1/me", u["deleted"].Token, map[string]string{"password": "password-" + u["deleted"].Handle}, http.StatusNoContent, nil)
	expiring, err := auth.NewTokens(matrixSecret, time.Nanosecond) // expired when issued
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := expiring.Issue(u["owner"].ID, u["owner"].SessionID)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := auth.NewTokens([]byte(strings.Repeat("k", auth.MinSecretBytes)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := otherKey.Issue(u["owner"].ID, u["owner"].SessionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range principals {
		w.tokens[p] = u[p].Token
	}
	w.tokens["revoked"], w.tokens["expired"], w.tokens["foreign-signed"] = second.Token, expired, forged
	w.ownerSession = s.LogIn(u["owner"]).SessionID

	everything := []string{w.group, name, renamed, beforeText, afterText}
	w.secrets = map[string][]string{
		"stranger": everything, "revoked": everything, "deleted": everything, "expired": everything, "foreign-signed": everything,
		"removed": {renamed, afterText}, // nothing after the removal
		"blocker": {afterText},          // nothing of the blocked owner's (docs/security.md)
	}
	return w
}

// ownerView is the group as its owner sees it: its details and its history.
func (w *world) ownerView(t *testing.T) []byte {
	t.Helper()
	var out []byte
	for _, path := range []string{"/v1/conversations/" + w.group, "/v1/conversations/" + w.group + "/messages"} {
		status, body := apptest.Request(t, "GET", w.s.APIURL+path, w.users["owner"].Token, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s as the owner: %d %s", path, status, body)
		}
		out = append(append(out, body...), '\n')
	}
	return out
}

// unchanged requires the owner's view of the group to be what it was before the refused
// principals asked: a refusal changes nothing.
func (w *world) unchanged(t *testing.T, what string, before []byte) {
	t.Helper()
	if after := w.ownerView(t); !bytes.Equal(after, before) {
		t.Errorf("%s: the refused principals changed the group: before %s, after %s", what, before, after)
	}
}

// leaks reports the secrets of p that body contains.
func (w *world) leaks(p string, body []byte) []string {
	var out []string
	for _, s := range w.secrets[p] {
		if bytes.Contains(body, []byte(s)) {
			out = append(out, s)
		}
	}
	return out
}

// asMissing in a want: the principal is answered exactly as for an object that does not exist.
const asMissing = -1

// routeRule says how to ask a route and what a principal gets where the default rules do not say.
type routeRule struct {
	// path is the request path; {obj} is the object the route is scoped to (object says which),
	// other {placeholders} are filled by fill.
	path string
	body func(w *world, p string) any
	// object returns the object a scoped route names and one that does not exist; nil: the
	// route is not scoped to an object.
	object func(w *world) (present, missing string)
	// want: expected status by principal, or asMissing; principals not named get the default:
	// outsiders asMissing on a scoped route, everyone else any 2xx.
	want map[string]int
	// prepare runs once before the route is asked (e.g. wait for the search index).
	prepare func(t *testing.T, w *world)
}

func group(w *world) (string, string) { return w.group, w.missing }

// ownerOnly: the group's other members are forbidden (TestRoleMatrix has the admins).
var ownerOnly = map[string]int{"member": http.StatusForbidden, "blocker": http.StatusForbidden, "blocked": http.StatusForbidden}

// everyone wants the same of every principal with a valid token.
func everyone(want int) map[string]int {
	return map[string]int{"stranger": want, "removed": want, "blocker": want, "blocked": want, "member": want, "owner": want}
}

// members wants the same of the group's current members.
func members(want int) map[string]int {
	return map[string]int{"blocker": want, "blocked": want, "member": want, "owner": want}
}

// routeRules: one per operation of docs/openapi.yaml.
var routeRules = map[string]routeRule{
	"GET /":              {path: "/"},
	"GET /assets/{name}": {path: "/assets/app.js"},
	"GET /healthz":       {path: "/healthz"},
	"POST /v1/signup": {path: "/v1/signup", body: func(*world, string) any {
		return map[string]string{"handle": "x"} // no password: the same 400 for everyone
	}},
	"POST /v1/login": {path: "/v1/login", body: func(w *world, _ string) any {
		return map[string]string{"handle": w.users["owner"].Handle, "password": "wrong"}
	}},
	"GET /v1/discovery": {path: "/v1/discovery"},
	"POST /v1/token/refresh": {path: "/v1/token/refresh", body: func(*world, string) any {
		return map[string]string{"refresh_token": "not-a-refresh-token"}
	}},

	"GET /v1/me":   {path: "/v1/me"},
	"PATCH /v1/me": {path: "/v1/me", body: func(*world, string) any { return map[string]any{"display_name": "Someone"} }},
	"DELETE /v1/me": {path: "/v1/me", body: func(w *world, p string) any {
		return map[string]string{"password": "password-" + w.users[p].Handle}
	}},
	"GET /v1/users":      {path: "/v1/users?handle={owner_handle}"},
	"GET /v1/users/{id}": {path: "/v1/users/{owner}"}, // profiles are public to every account
	"POST /v1/conversations/direct": {path: "/v1/conversations/direct", body: func(w *world, _ string) any {
		return map[string]string{"user_id": w.users["newbie"].ID}
	}},
	"GET /v1/conversations": {path: "/v1/conversations"},
	"POST /v1/groups": {path: "/v1/groups", body: func(*world, string) any {
		return map[string]any{"name": "another", "member_ids": []string{}}
	}},
	"GET /v1/invitations": {path: "/v1/invitations"},
	"GET /v1/search": {path: "/v1/search?q={after}&conversation_id={obj}", object: group,
		want: map[string]int{"removed": http.StatusOK},
		prepare: func(t *testing.T, w *world) {
			waitFor(t, func() bool {
				status, body := apptest.Request(t, "GET", w.s.APIURL+"/v1/search?q="+w.words[1], w.users["owner"].Token, nil)
				return status == http.StatusOK && bytes.Contains(body, []byte(w.words[1]))
			}, "the owner's message in the search index")
		}},
	"GET /v1/blocks":           {path: "/v1/blocks"},
	"PUT /v1/blocks/{user}":    {path: "/v1/blocks/{newbie}"},
	"DELETE /v1/blocks/{user}": {path: "/v1/blocks/{newbie}"},
	"GET /v1/me/privacy":       {path: "/v1/me/privacy"},
	"PUT /v1/me/privacy":       {path: "/v1/me/privacy", body: func(*world, string) any { return map[string]string{"presence": "contacts"} }},
	"PUT /v1/devices/{device}/push-token": {path: "/v1/devices/d1/push-token", body: func(*world, string) any {
		return map[string]string{"platform": "android", "token": "push-token-0123456789"}
	}},
	"DELETE /v1/devices/{device}/push-token": {path: "/v1/devices/d1/push-token"},
	"GET /v1/sessions":                       {path: "/v1/sessions"},
	"DELETE /v1/sessions/{id}": {path: "/v1/sessions/{obj}", object: func(w *world) (string, string) {
		return w.ownerSession, "01NOSUCHSESSION00000000000"
	}, want: map[string]int{"removed": asMissing, "blocker": asMissing, "blocked": asMissing, "member": asMissing}},
	"POST /v1/logout":     {path: "/v1/logout", body: func(*world, string) any { return map[string]string{"device_id": "d1"} }},
	"POST /v1/logout/all": {path: "/v1/logout/all"},

	// Scoped to the group.
	"GET /v1/conversations/{id}":    {path: "/v1/conversations/{obj}", object: group},
	"PATCH /v1/conversations/{id}":  {path: "/v1/conversations/{obj}", object: group, want: ownerOnly, body: func(*world, string) any { return map[string]string{"name": "new name"} }},
	"DELETE /v1/conversations/{id}": {path: "/v1/conversations/{obj}", object: group, want: ownerOnly},
	"GET /v1/conversations/{id}/messages": {path: "/v1/conversations/{obj}/messages", object: group,
		want: map[string]int{"removed": http.StatusOK}},
	"PATCH /v1/conversations/{id}/messages/{seq}": {path: "/v1/conversations/{obj}/messages/{before}", object: group, want: ownerOnly,
		body: func(*world, string) any { return map[string]string{"text": "edited", "client_msg_id": "e1"} }},
	"DELETE /v1/conversations/{id}/messages/{seq}": {path: "/v1/conversations/{obj}/messages/{before}?client_msg_id=d1", object: group, want: ownerOnly},
	"GET /v1/conversations/{id}/receipts":          {path: "/v1/conversations/{obj}/receipts", object: group},
	"POST /v1/conversations/{id}/members": {path: "/v1/conversations/{obj}/members", object: group, want: ownerOnly,
		body: func(w *world, _ string) any { return map[string]any{"user_ids": []string{w.users["newbie"].ID}} }},
	"DELETE /v1/conversations/{id}/members/{user}": {path: "/v1/conversations/{obj}/members/{extra}", object: group, want: ownerOnly},
	"POST /v1/conversations/{id}/leave":            {path: "/v1/conversations/{obj}/leave", object: group},
	"PUT /v1/conversations/{id}/members/{user}/role": {path: "/v1/conversations/{obj}/members/{extra}/role", object: group, want: ownerOnly,
		body: func(*world, string) any { return map[string]string{"role": "admin"} }},
	"POST /v1/conversations/{id}/owner": {path: "/v1/conversations/{obj}/owner", object: group, want: ownerOnly,
		body: func(w *world, _ string) any { return map[string]string{"user_id": w.users["extra"].ID} }},
	// Nobody in the matrix is invited (accepting is part of every world's set-up): every
	// principal is answered as for a missing conversation.
	"POST /v1/conversations/{id}/accept":  {path: "/v1/conversations/{obj}/accept", object: group, want: everyone(asMissing)},
	"POST /v1/conversations/{id}/decline": {path: "/v1/conversations/{obj}/decline", object: group, want: everyone(asMissing)},
	"PUT /v1/conversations/{id}/mute": {path: "/v1/conversations/{obj}/mute", object: group,
		body: func(*world, string) any { return map[string]bool{"muted": true} }},
	// A group is no direct request: members are told so, outsiders get the missing answer.
	"POST /v1/conversations/{id}/ignore": {path: "/v1/conversations/{obj}/ignore", object: group, want: members(http.StatusConflict)},
}

// fill replaces the placeholders of a rule's path.
func (w *world) fill(path, obj string) string {
	return strings.NewReplacer(
		"{obj}", obj,
		"{owner_handle}", w.users["owner"].Handle,
		"{owner}", w.users["owner"].ID,
		"{newbie}", w.users["newbie"].ID,
		"{extra}", w.users["extra"].ID,
		"{before}", strconv.FormatUint(w.before, 10),
		"{after}", w.words[1],
	).Replace(path)
}

// specOperations lists "METHOD /path" of docs/openapi.yaml and whether each needs a token.
func specOperations(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	ops := map[string]bool{}
	for path, methods := range doc.Paths {
		for method, op := range methods {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				// An operation's "security: []" makes it public; otherwise the document's
				// bearer scheme applies.
				security, set := op.(map[string]any)["security"]
				ops[strings.ToUpper(method)+" "+path] = !set || len(security.([]any)) > 0
			}
		}
	}
	if len(ops) == 0 {
		t.Fatalf("%s: no operations", specPath)
	}
	return ops
}

// clientFrameTypes lists the values of the "Client -> server frame types" constants of
// sdk/go/protocol.
func clientFrameTypes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), protocolPath, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST || gd.Doc == nil || !strings.HasPrefix(gd.Doc.Text(), "Client -> server frame types") {
			continue
		}
		for _, spec := range gd.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: client frame type %v is not a string literal", protocolPath, v)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				types = append(types, s)
			}
		}
	}
	if len(types) == 0 {
		t.Fatalf("%s: no \"Client -> server frame types\" constants", protocolPath)
	}
	return types
}

// TestAccessMatrix asks every route of the API and sends every client frame type as each
// principal, in a fresh group per route or frame type, and checks the rules:
//   - a public route answers every principal exactly as it answers no token;
//   - every other route refuses the revoked, deleted, expired and foreign-signed tokens with 401
//     "unauthorized" and a WWW-Authenticate header, and the gateway refuses their upgrade with 401;
//   - a route or frame scoped to an object (a conversation, a session, a user's presence) answers
//     a principal without access byte for byte as it answers for an object that does not exist;
//   - the owner and members succeed, except where the role rules (TestRoleMatrix) forbid;
//   - no answer to a principal contains what it may not see: nothing of the group for those
//     never in it, nothing after the removal for the removed member, nothing of the owner's after
//     the block for the member who blocked the owner.
func TestAccessMatrix(t *testing.T) {
	ops := specOperations(t)
	for op := range ops {
		if _, ok := routeRules[op]; !ok {
			t.Errorf("%s in %s has no rule in TestAccessMatrix", op, specPath)
		}
	}
	for op := range routeRules {
		if _, ok := ops[op]; !ok {
			t.Errorf("TestAccessMatrix has a rule for %s, which %s does not have", op, specPath)
		}
	}
	frames := clientFrameTypes(t)
	for _, typ := range frames {
		if frameRules[typ] == nil {
			t.Errorf("client frame type %q of %s has no rule in TestAccessMatrix", typ, protocolPath)
		}
	}
	if t.Failed() {
		return
	}
	s := apptest.Start(t, func(c *app.Config) { c.JWTSecret = matrixSecret })
	names := make([]string, 0, len(ops))
	for op := range ops {
		names = append(names, op)
	}
	slices.Sort(names)
	n := 0
	for _, op := range names {
		n++
		t.Run(op, func(t *testing.T) { checkRoute(t, newWorld(t, s, n), op, ops[op], routeRules[op]) })
	}
	for _, typ := range frames {
		n++
		t.Run("frame "+typ, func(t *testing.T) { checkFrame(t, newWorld(t, s, n), typ, frameRules[typ]) })
	}
}

func checkRoute(t *testing.T, w *world, op string, authenticated bool, r routeRule) {
	method, _, _ := strings.Cut(op, " ")
	if r.prepare != nil {
		r.prepare(t, w)
	}
	ask := func(p, obj string) (int, []byte, http.Header) {
		t.Helper()
		var body any
		if r.body != nil {
			body = r.body(w, p)
		}
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(method, w.s.APIURL+w.fill(r.path, obj), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		if tok := w.tokens[p]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, buf.Bytes(), resp.Header
	}
	present, missing := "", ""
	if r.object != nil {
		present, missing = r.object(w)
	}
	anonStatus, anonBody, _ := ask("", present)
	before := w.ownerView(t)
	for _, p := range principals {
		if p == "blocker" { // the first principal that may change the group
			w.unchanged(t, op, before)
		}
		var wantMissing []byte
		var wantMissingStatus int
		want, named := r.want[p]
		if !named && r.object != nil && outsider(p) {
			want = asMissing
		}
		if want == asMissing && !badToken(p) {
			wantMissingStatus, wantMissing, _ = ask(p, missing)                           // asked first: the real request may change things
			wantMissing = bytes.ReplaceAll(wantMissing, []byte(missing), []byte(present)) // an answer may name what was asked for
		}
		status, body, header := ask(p, present)
		cell := fmt.Sprintf("%s as %s", op, p)
		if leaked := w.leaks(p, body); len(leaked) > 0 {
			t.Errorf("%s: LEAK %q in %d %s", cell, leaked, status, body)
		}
		switch {
		case !authenticated:
			if status != anonStatus || !bytes.Equal(withoutLiveCounts(body), withoutLiveCounts(anonBody)) {
				t.Errorf("%s: %d %s, want as without a token: %d %s", cell, status, body, anonStatus, anonBody)
			}
		case badToken(p):
			// The same answer as GET /v1/me gives the token: nothing depends on the route.
			_, me := apptest.Request(t, "GET", w.s.APIURL+"/v1/me", w.tokens[p], nil)
			if status != http.StatusUnauthorized || !bytes.Contains(body, []byte(`"code":"unauthorized"`)) || header.Get("WWW-Authenticate") == "" || !bytes.Equal(body, me) {
				t.Errorf("%s: %d %s, want 401 unauthorized with WWW-Authenticate, as GET /v1/me: %s", cell, status, body, me)
			}
		case want == asMissing:
			if status != wantMissingStatus || !bytes.Equal(body, wantMissing) || status < 400 {
				t.Errorf("%s: %d %s, want the refusal for a missing object: %d %s", cell, status, body, wantMissingStatus, wantMissing)
			}
		case want != 0:
			if status != want {
				t.Errorf("%s: %d %s, want %d", cell, status, body, want)
			}
		default:
			if status < 200 || status > 299 {
				t.Errorf("%s: %d %s, want success", cell, status, body)
			}
		}
	}
}

// frameRule builds the frame a principal sends, for the real object (or the missing one) of a
// frame scoped to one.
type frameRule struct {
	frame  func(w *world, p, obj string) protocol.ClientFrame
	object func(w *world) (present, missing string)
	// answer is the frame type that tells success; "": success is silence (no error).
	answer string
	// want: by principal, asMissing, an error code, or "" (the default: outsiders asMissing on a
	// scoped frame, everyone else success).
	want map[string]string
}

const missingWant = "as missing"

var ownerOnlyFrame = map[string]string{"member": string(protocol.CodeNotAllowed), "blocker": string(protocol.CodeNotAllowed), "blocked": string(protocol.CodeNotAllowed)}

var frameRules = map[string]*frameRule{
	protocol.TypePing: {answer: protocol.TypePong, frame: func(*world, string, string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypePing}
	}},
	protocol.TypeSend: {answer: protocol.TypeAck, object: group, frame: func(_ *world, p, obj string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: obj, ClientMsgID: "s-" + p, Text: "hello"}
	}},
	// Up to the message after the removal: the removed member may mark read (or delivered) only
	// the history it keeps.
	protocol.TypeRead: {object: group, frame: func(w *world, _, obj string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: obj, UpTo: w.after}
	}},
	protocol.TypeDelivered: {object: group, frame: func(w *world, _, obj string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeDelivered, ConversationID: obj, UpTo: w.after}
	}},
	protocol.TypeTyping: {object: group, frame: func(_ *world, _, obj string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: obj, State: protocol.TypingStart}
	}},
	protocol.TypeEdit: {answer: protocol.TypeAck, object: group, want: ownerOnlyFrame, frame: func(w *world, p, obj string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeEdit, ConversationID: obj, ClientMsgID: "e-" + p, TargetSeq: w.before, Text: "edited"}
	}},
	protocol.TypeDelete: {answer: protocol.TypeAck, object: group, want: ownerOnlyFrame, frame: func(w *world, p, obj string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeDelete, ConversationID: obj, ClientMsgID: "d-" + p, TargetSeq: w.before}
	}},
	// Presence of the owner: only those sharing a conversation with the owner and not blocked
	// either way learn it; the others get what a user who does not exist gets.
	protocol.TypePresence: {answer: protocol.TypePresence, object: func(w *world) (string, string) {
		return w.users["owner"].ID, "01NOSUCHUSER0000000000000A"
	}, want: map[string]string{"blocker": missingWant, "blocked": missingWant},
		frame: func(_ *world, _, obj string) protocol.ClientFrame {
			return protocol.ClientFrame{Type: protocol.TypePresence, UserIDs: []string{obj}}
		}},
	// A fresh token of the socket's own session.
	protocol.TypeAuth: {answer: protocol.TypeAuth, frame: func(w *world, p, _ string) protocol.ClientFrame {
		return protocol.ClientFrame{Type: protocol.TypeAuth, Token: w.tokens[p]}
	}},
}

// exchange sends f with id "x" on ws and returns the frames answering it: those with ref "x" that
// arrive before the pong of a ping sent after it, or, when answer names a type, up to the first
// frame of that type or an error with ref "x".
func exchange(t *testing.T, ws *apptest.WS, f protocol.ClientFrame, answer string) [][]byte {
	t.Helper()
	f.ID = "x"
	ws.Send(f)
	if answer != "" && answer != protocol.TypePong {
		for {
			got := ws.NextOfAny(wait, answer, protocol.TypeError)
			if got.Ref == "x" {
				return [][]byte{got.Raw}
			}
		}
	}
	ws.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "end"})
	var out [][]byte
	for {
		got := ws.Next(wait)
		if got.Type == protocol.TypePong && got.Ref == "end" {
			return out
		}
		if got.Ref == "x" {
			out = append(out, got.Raw)
		}
	}
}

func checkFrame(t *testing.T, w *world, typ string, r *frameRule) {
	present, missing := "", ""
	if r.object != nil {
		present, missing = r.object(w)
	}
	before := w.ownerView(t)
	for _, p := range principals {
		if p == "blocker" { // the first principal that may change the group
			w.unchanged(t, "frame "+typ, before)
		}
		cell := fmt.Sprintf("frame %s as %s", typ, p)
		if badToken(p) {
			status, body := upgrade(t, w, w.tokens[p])
			if status != http.StatusUnauthorized {
				t.Errorf("%s: upgrade answered %d %s, want 401", cell, status, body)
			}
			if leaked := w.leaks(p, body); len(leaked) > 0 {
				t.Errorf("%s: LEAK %q in %s", cell, leaked, body)
			}
			continue
		}
		ws := apptest.Dial(t, apptest.WSURLFor(w.s.WSURL, w.tokens[p], "m-"+p, nil))
		ws.NextOf(protocol.TypeSynced, wait)
		want := r.want[p]
		if want == "" && r.object != nil && outsider(p) {
			want = missingWant
		}
		var wantAnswer [][]byte
		if want == missingWant {
			for _, raw := range exchange(t, ws, r.frame(w, p, missing), "") {
				wantAnswer = append(wantAnswer, bytes.ReplaceAll(raw, []byte(missing), []byte(present))) // an answer may name what was asked for
			}
		}
		got := exchange(t, ws, r.frame(w, p, present), map[bool]string{true: "", false: r.answer}[want == missingWant])
		for _, raw := range got {
			if leaked := w.leaks(p, raw); len(leaked) > 0 {
				t.Errorf("%s: LEAK %q in %s", cell, leaked, raw)
			}
		}
		switch want {
		case missingWant:
			if !slices.EqualFunc(got, wantAnswer, bytes.Equal) {
				t.Errorf("%s: answered %q, want as for a missing object: %q", cell, got, wantAnswer)
			}
		case "":
			if len(got) > 0 && bytes.Contains(got[0], []byte(`"type":"error"`)) || r.answer != "" && len(got) == 0 {
				t.Errorf("%s: answered %q, want success", cell, got)
			}
		default:
			if len(got) != 1 || !bytes.Contains(got[0], []byte(`"code":"`+want+`"`)) {
				t.Errorf("%s: answered %q, want error %s", cell, got, want)
			}
		}
		// Everything the socket was sent (live events included) is free of p's secrets.
		ws.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "last"})
		for {
			f := ws.Next(wait)
			if leaked := w.leaks(p, f.Raw); len(leaked) > 0 {
				t.Errorf("%s: LEAK %q in %s", cell, leaked, f.Raw)
			}
			if f.Type == protocol.TypePong && f.Ref == "last" {
				break
			}
		}
		_ = ws.Conn.CloseNow()
	}
}

// upgrade is the HTTP answer to a WebSocket upgrade with token.
func upgrade(t *testing.T, w *world, tok string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", strings.Replace(w.s.WSURL, "ws://", "http://", 1)+"?device=probe&token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// liveCount matches the figures of an answer that change between two requests of the same
// route whoever asks: discovery's connection counts (a socket of an earlier case closing).
var liveCount = regexp.MustCompile(`"connections":\d+`)

// withoutLiveCounts is body with its live figures blanked, for comparing two answers.
func withoutLiveCounts(body []byte) []byte {
	return liveCount.ReplaceAll(body, []byte(`"connections":0`))
}
