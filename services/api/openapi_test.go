package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/natter-chat/natter/pkg/origin"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// TestSpecRoutesMatchServer: the routes the server registers are exactly the operations of
// docs/openapi.yaml, so a route without a spec entry fails, and a spec entry without a route.
func TestSpecRoutesMatchServer(t *testing.T) {
	t.Parallel()
	spec := loadSpec(t)
	e := newEnv(t)

	param := func(path string) string {
		segs := strings.Split(path, "/")
		for i, s := range segs {
			if name, ok := strings.CutPrefix(s, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		return strings.Join(segs, "/")
	}
	served := map[string]bool{}
	for _, r := range e.srv.app.GetRoutes(true) { // true: without Use middleware
		served[r.Method+" "+param(r.Path)] = true
	}
	for op := range served {
		// fiber serves HEAD for every GET route; the spec describes the GET.
		if get, ok := strings.CutPrefix(op, "HEAD "); ok && served["GET "+get] {
			delete(served, op)
		}
	}
	var missing, extra []string
	for op := range served {
		if spec.ops[op] == nil {
			missing = append(missing, op)
		}
	}
	for op := range spec.ops {
		if !served[op] {
			extra = append(extra, op)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("routes the server serves that %s does not describe: %v", specFile, missing)
	}
	if len(extra) > 0 {
		t.Errorf("operations in %s that the server does not serve: %v", specFile, extra)
	}
}

// specClient sends requests to a real server and holds every answer to the spec.
type specClient struct {
	t    *testing.T
	e    *env
	spec *apiSpec
}

// call sends a request, requires status want and a spec-valid answer, and decodes the body into
// out (if not nil).
func (c specClient) call(method, path, token string, body any, want int, out any) {
	c.t.Helper()
	status, header, raw := c.e.send(c.t, method, path, token, body)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	var request []byte
	switch b := body.(type) {
	case nil:
	case string:
		request = []byte(b)
	default:
		request, _ = json.Marshal(b) // send marshalled it already
	}
	if err := c.spec.validate(method, path, request, status, header, raw); err != nil {
		c.t.Errorf("answer does not match %s: %v", specFile, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// TestSpecAnswers drives a realistic session through the real API (NATS, Pebble) and validates
// every answer, successes and errors, against docs/openapi.yaml; at the end every operation must
// have had a validated 2xx answer.
func TestSpecAnswers(t *testing.T) {
	t.Parallel()
	spec := loadSpec(t)
	const browser = "https://chat.example.com"
	allowed, err := origin.Parse(browser)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Origins = allowed })
	c := specClient{t, e, spec}
	ctx := testContext(t)

	c.call("GET", "/healthz", "", nil, http.StatusOK, nil)
	c.call("GET", "/", "", nil, http.StatusOK, nil)
	c.call("GET", "/assets/app.js", "", nil, http.StatusOK, nil)
	c.call("GET", "/assets/style.css", "", nil, http.StatusOK, nil)
	c.call("GET", "/assets/index.html", "", nil, http.StatusNotFound, nil)

	// Accounts.
	type session struct {
		User         userJSON `json:"user"`
		Token        string   `json:"token"`
		RefreshToken string   `json:"refresh_token"`
		SessionID    string   `json:"session_id"`
	}
	signup := func(handle string) session {
		var s session
		c.call("POST", "/v1/signup", "", map[string]string{"handle": handle, "password": "correct horse", "display_name": strings.ToUpper(handle)}, http.StatusCreated, &s)
		return s
	}
	alice, bob, carol, dave := signup("alice"), signup("bob"), signup("carol"), signup("dave")
	c.call("POST", "/v1/signup", "", map[string]string{"handle": "Alice", "password": "another one"}, http.StatusConflict, nil)
	c.call("POST", "/v1/signup", "", map[string]string{"handle": "a!", "password": "correct horse"}, http.StatusBadRequest, nil)
	c.call("POST", "/v1/signup", "", `{"handle":`, http.StatusBadRequest, nil)
	c.call("POST", "/v1/login", "", map[string]string{"handle": "ALICE", "password": "correct horse"}, http.StatusOK, nil)
	c.call("POST", "/v1/login", "", map[string]string{"handle": "alice", "password": "wrong horse"}, http.StatusUnauthorized, nil)
	c.call("POST", "/v1/login", "", map[string]string{"handle": "alice"}, http.StatusBadRequest, nil)

	c.call("GET", "/v1/me", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/me", "", nil, http.StatusUnauthorized, nil)
	c.call("GET", "/v1/me", "not-a-token", nil, http.StatusUnauthorized, nil)
	c.call("PATCH", "/v1/me", alice.Token, map[string]string{"display_name": "Alice Liddell"}, http.StatusOK, nil)
	c.call("PATCH", "/v1/me", alice.Token, map[string]string{"display_name": " "}, http.StatusBadRequest, nil)

	// Users.
	c.call("GET", "/v1/users?handle=BOB", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/users?handle=zed", alice.Token, nil, http.StatusNotFound, nil)
	c.call("GET", "/v1/users", alice.Token, nil, http.StatusBadRequest, nil)
	c.call("GET", "/v1/users/"+bob.User.ID, alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/users/"+strings.Repeat("Z", 26), alice.Token, nil, http.StatusNotFound, nil)

	// A direct conversation with messages from two devices.
	var direct struct {
		Conversation conversationJSON `json:"conversation"`
	}
	c.call("POST", "/v1/conversations/direct", alice.Token, map[string]string{"user_id": bob.User.ID}, http.StatusCreated, &direct)
	c.call("POST", "/v1/conversations/direct", bob.Token, map[string]string{"user_id": alice.User.ID}, http.StatusOK, nil)
	c.call("POST", "/v1/conversations/direct", alice.Token, map[string]string{"user_id": alice.User.ID}, http.StatusBadRequest, nil)
	d := direct.Conversation.ID
	var (
		ids  []string
		seqs []uint64
	)
	for i, from := range []session{alice, bob, alice} {
		seq, id := e.publish(t, streams.ChatEvent{
			Kind: streams.KindMsg, ConversationID: d, SenderID: from.User.ID,
			SenderDevice: "phone", ClientMsgID: "c" + string(rune('1'+i)), Text: "hello " + from.User.Handle,
		})
		ids, seqs = append(ids, id), append(seqs, seq)
	}
	// Edits and deletes of those messages (history below shows them).
	msgPath := func(seq uint64, query string) string {
		return fmt.Sprintf("/v1/conversations/%s/messages/%d%s", d, seq, query)
	}
	c.call("PATCH", msgPath(seqs[0], ""), alice.Token, map[string]string{"client_msg_id": "e1", "text": "hello, edited"}, http.StatusOK, nil)
	c.call("PATCH", msgPath(seqs[0], ""), alice.Token, map[string]string{"client_msg_id": "e1", "text": "hello, edited"}, http.StatusOK, nil)
	c.call("PATCH", msgPath(seqs[0], ""), bob.Token, map[string]string{"client_msg_id": "e2", "text": "not mine"}, http.StatusForbidden, nil)
	c.call("PATCH", msgPath(seqs[0], ""), alice.Token, map[string]string{"client_msg_id": "e3", "text": ""}, http.StatusBadRequest, nil)
	c.call("PATCH", msgPath(seqs[2]+1000, ""), alice.Token, map[string]string{"client_msg_id": "e4", "text": "nothing there"}, http.StatusNotFound, nil)
	c.call("DELETE", msgPath(seqs[1], "?client_msg_id=d1"), bob.Token, nil, http.StatusOK, nil)
	c.call("DELETE", msgPath(seqs[1], "?client_msg_id=d2"), bob.Token, nil, http.StatusConflict, nil)
	c.call("DELETE", msgPath(seqs[2], "?client_msg_id=h1&for=me"), bob.Token, nil, http.StatusOK, nil)
	c.call("DELETE", msgPath(seqs[2], "?client_msg_id=h2&for=them"), bob.Token, nil, http.StatusBadRequest, nil)

	// A group through its whole life.
	var group struct {
		Conversation conversationJSON `json:"conversation"`
		Seq          uint64           `json:"seq"`
	}
	c.call("POST", "/v1/groups", alice.Token, map[string]any{"name": "Trip", "member_ids": []string{bob.User.ID, carol.User.ID}}, http.StatusCreated, &group)
	c.call("POST", "/v1/groups", alice.Token, map[string]any{"name": ""}, http.StatusBadRequest, nil)
	c.call("POST", "/v1/groups", alice.Token, map[string]any{"name": "Ghosts", "member_ids": []string{strings.Repeat("Z", 26)}}, http.StatusNotFound, nil)
	g := "/v1/conversations/" + group.Conversation.ID
	e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: group.Conversation.ID, SenderID: carol.User.ID, Text: "who brings the tent?"})
	c.call("GET", "/v1/invitations", bob.Token, nil, http.StatusOK, nil)
	c.call("POST", g+"/accept", bob.Token, nil, http.StatusOK, nil)
	c.call("POST", g+"/accept", carol.Token, nil, http.StatusOK, nil)
	c.call("POST", g+"/accept", carol.Token, nil, http.StatusNotFound, nil)
	c.call("PATCH", g, bob.Token, map[string]string{"name": "Long weekend"}, http.StatusForbidden, nil)
	c.call("PUT", g+"/members/"+bob.User.ID+"/role", alice.Token, map[string]string{"role": "admin"}, http.StatusOK, nil)
	c.call("PUT", g+"/members/"+bob.User.ID+"/role", alice.Token, map[string]string{"role": "owner"}, http.StatusBadRequest, nil)
	c.call("PATCH", g, bob.Token, map[string]string{"name": "Long weekend"}, http.StatusOK, nil)
	c.call("PATCH", "/v1/conversations/"+d, alice.Token, map[string]string{"name": "x"}, http.StatusBadRequest, nil)
	c.call("POST", g+"/members", bob.Token, map[string]any{"user_ids": []string{dave.User.ID}}, http.StatusOK, nil)
	c.call("POST", g+"/members", bob.Token, map[string]any{"user_ids": []string{dave.User.ID}}, http.StatusConflict, nil)
	c.call("POST", g+"/accept", dave.Token, nil, http.StatusOK, nil)
	c.call("DELETE", g+"/members/"+carol.User.ID, dave.Token, nil, http.StatusForbidden, nil)
	c.call("DELETE", g+"/members/"+carol.User.ID, bob.Token, nil, http.StatusOK, nil)
	c.call("POST", g+"/owner", alice.Token, map[string]string{"user_id": bob.User.ID}, http.StatusOK, nil)
	c.call("POST", g+"/owner", alice.Token, map[string]string{"user_id": bob.User.ID}, http.StatusForbidden, nil)
	c.call("POST", g+"/leave", dave.Token, nil, http.StatusOK, nil)
	c.call("POST", g+"/leave", carol.Token, nil, http.StatusNotFound, nil)
	c.call("POST", g+"/members", bob.Token, map[string]any{"user_ids": []string{carol.User.ID}}, http.StatusOK, nil)
	c.call("POST", g+"/decline", carol.Token, nil, http.StatusOK, nil)
	// A second group, deleted by its owner.
	var doomed struct {
		Conversation conversationJSON `json:"conversation"`
	}
	c.call("POST", "/v1/groups", alice.Token, map[string]any{"name": "Doomed", "member_ids": []string{dave.User.ID}}, http.StatusCreated, &doomed)
	c.call("DELETE", "/v1/conversations/"+doomed.Conversation.ID, dave.Token, nil, http.StatusNotFound, nil)
	c.call("DELETE", "/v1/conversations/"+doomed.Conversation.ID, alice.Token, nil, http.StatusOK, nil)
	c.call("DELETE", "/v1/conversations/"+d, alice.Token, nil, http.StatusBadRequest, nil)

	// Reading: lists, details, history, receipts.
	if _, err := e.store.AdvanceWatermark(ctx, store.Watermark{ConversationID: d, UserID: bob.User.ID, Delivered: 2, Read: 1}); err != nil {
		t.Fatal(err)
	}
	c.call("GET", "/v1/conversations", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/conversations", dave.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/conversations/"+d, bob.Token, nil, http.StatusOK, nil)
	c.call("GET", g, carol.Token, nil, http.StatusNotFound, nil)
	c.call("GET", "/v1/conversations/"+d+"/messages", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/conversations/"+d+"/messages?limit=1", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/conversations/"+d+"/messages?around_id="+ids[1]+"&limit=1", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/conversations/"+d+"/messages?around_id="+strings.Repeat("Z", 26), alice.Token, nil, http.StatusNotFound, nil)
	c.call("GET", "/v1/conversations/"+d+"/messages?before=3&after=1", alice.Token, nil, http.StatusBadRequest, nil)
	c.call("GET", "/v1/conversations/"+d+"/messages", carol.Token, nil, http.StatusNotFound, nil)

	// Consent: a request carol makes to dave, ignored, then accepted; blocks; privacy.
	var req struct {
		Conversation conversationJSON `json:"conversation"`
	}
	c.call("POST", "/v1/conversations/direct", carol.Token, map[string]string{"user_id": dave.User.ID}, http.StatusCreated, &req)
	r := "/v1/conversations/" + req.Conversation.ID
	c.call("POST", r+"/accept", carol.Token, nil, http.StatusConflict, nil)
	c.call("POST", r+"/ignore", dave.Token, nil, http.StatusNoContent, nil)
	c.call("GET", "/v1/conversations", dave.Token, nil, http.StatusOK, nil)
	c.call("POST", r+"/accept", dave.Token, nil, http.StatusOK, nil)
	c.call("POST", r+"/accept", alice.Token, nil, http.StatusNotFound, nil)
	c.call("PUT", "/v1/blocks/"+carol.User.ID, dave.Token, nil, http.StatusNoContent, nil)
	c.call("PUT", "/v1/blocks/"+dave.User.ID, dave.Token, nil, http.StatusBadRequest, nil)
	c.call("PUT", "/v1/blocks/"+strings.Repeat("Z", 26), dave.Token, nil, http.StatusNotFound, nil)
	c.call("GET", "/v1/blocks", dave.Token, nil, http.StatusOK, nil)
	c.call("DELETE", "/v1/blocks/"+carol.User.ID, dave.Token, nil, http.StatusNoContent, nil)
	c.call("GET", "/v1/me/privacy", dave.Token, nil, http.StatusOK, nil)
	c.call("PUT", "/v1/me/privacy", dave.Token, map[string]string{"presence": "contacts"}, http.StatusOK, nil)
	c.call("PUT", "/v1/me/privacy", dave.Token, map[string]string{"presence": "friends"}, http.StatusBadRequest, nil)
	c.call("GET", g+"/messages", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", g+"/messages", dave.Token, nil, http.StatusOK, nil) // a former member
	c.call("GET", "/v1/conversations/"+d+"/receipts", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", g+"/receipts", bob.Token, nil, http.StatusOK, nil)
	c.call("GET", g+"/receipts", dave.Token, nil, http.StatusNotFound, nil)

	// Search: unavailable without a search process, then with one.
	c.call("GET", "/v1/search?q=hello", alice.Token, nil, http.StatusServiceUnavailable, nil)
	e.startSearch(t)
	head, _ := e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: d, SenderID: bob.User.ID, Text: "안녕하세요 hello"})
	e.waitSearchIndexed(t, head)
	c.call("GET", "/v1/search?q=hello&limit=1", alice.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/search?q="+url.QueryEscape("안녕")+"&conversation_id="+d, bob.Token, nil, http.StatusOK, nil)
	c.call("GET", "/v1/search?q=hello&conversation_id="+d, carol.Token, nil, http.StatusNotFound, nil)
	c.call("GET", "/v1/search?q=hello&cursor=bogus", alice.Token, nil, http.StatusBadRequest, nil)
	c.call("GET", "/v1/search", alice.Token, nil, http.StatusBadRequest, nil)

	// Push tokens, mute, logout.
	c.call("PUT", "/v1/devices/phone/push-token", bob.Token, map[string]string{"platform": "android", "token": "fcm-token-1"}, http.StatusOK, nil)
	c.call("PUT", "/v1/devices/phone/push-token", bob.Token, map[string]string{"platform": "symbian", "token": "x"}, http.StatusBadRequest, nil)
	c.call("DELETE", "/v1/devices/phone/push-token", bob.Token, nil, http.StatusNoContent, nil)
	c.call("DELETE", "/v1/devices/no!such/push-token", bob.Token, nil, http.StatusBadRequest, nil)
	c.call("PUT", "/v1/conversations/"+d+"/mute", bob.Token, map[string]bool{"muted": true}, http.StatusOK, nil)
	c.call("PUT", "/v1/conversations/"+d+"/mute", bob.Token, map[string]string{}, http.StatusBadRequest, nil)
	c.call("PUT", "/v1/conversations/"+d+"/mute", carol.Token, map[string]bool{"muted": true}, http.StatusNotFound, nil)
	c.call("POST", "/v1/logout", bob.Token, map[string]string{"device_id": "no!such"}, http.StatusBadRequest, nil)
	c.call("POST", "/v1/logout", bob.Token, map[string]string{"device_id": "phone"}, http.StatusNoContent, nil)
	c.call("POST", "/v1/logout", bob.Token, nil, http.StatusUnauthorized, nil)

	// Sessions: refresh (and a reused refresh token), list, end one, log out everywhere.
	var fresh session
	c.call("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": carol.RefreshToken}, http.StatusOK, &fresh)
	c.call("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": carol.RefreshToken}, http.StatusUnauthorized, nil)
	c.call("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": fresh.RefreshToken}, http.StatusUnauthorized, nil)
	c.call("POST", "/v1/token/refresh", "", map[string]string{}, http.StatusBadRequest, nil)
	var second session
	c.call("POST", "/v1/login", "", map[string]string{"handle": "dave", "password": "correct horse"}, http.StatusOK, &second)
	c.call("GET", "/v1/sessions", dave.Token, nil, http.StatusOK, nil)
	c.call("DELETE", "/v1/sessions/"+second.SessionID, dave.Token, nil, http.StatusNoContent, nil)
	c.call("DELETE", "/v1/sessions/"+alice.SessionID, dave.Token, nil, http.StatusNotFound, nil)
	c.call("POST", "/v1/logout/all", dave.Token, nil, http.StatusNoContent, nil)
	c.call("GET", "/v1/sessions", dave.Token, nil, http.StatusUnauthorized, nil)

	// Account deletion.
	zed := signup("zed")
	c.call("DELETE", "/v1/me", zed.Token, map[string]string{"password": "wrong horse"}, http.StatusUnauthorized, nil)
	c.call("DELETE", "/v1/me", zed.Token, map[string]string{}, http.StatusBadRequest, nil)
	c.call("DELETE", "/v1/me", zed.Token, map[string]string{"password": "correct horse"}, http.StatusNoContent, nil)
	c.call("GET", "/v1/me", zed.Token, nil, http.StatusUnauthorized, nil)

	// Discovery: none live, then one.
	c.call("GET", "/v1/discovery", "", nil, http.StatusServiceUnavailable, nil)
	kv, err := e.js.KeyValue(ctx, streams.GatewaysBucket)
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := json.Marshal(streams.GatewayInfo{ID: "gw-1", URL: "ws://127.0.0.1:8081/v1/ws", Connections: 2, Updated: 1})
	if _, err := kv.Put(ctx, "gw-1", gw); err != nil {
		t.Fatal(err)
	}
	c.call("GET", "/v1/discovery", "", nil, http.StatusOK, nil)

	// A CORS preflight from an origin not allowed.
	a := e.corsDo(t, "OPTIONS", "/v1/conversations", "https://evil.example.net", "")
	if a.status != http.StatusForbidden {
		t.Fatalf("preflight from a foreign origin: %d %s", a.status, a.body)
	}
	if err := spec.validateComponent("OriginNotAllowed", a.header, a.body); err != nil {
		t.Error(err)
	}

	// A flood of sign-ups from one address ends in 429 with Retry-After (the default limits).
	for i := 0; ; i++ {
		body := map[string]string{"handle": fmt.Sprintf("flood%d", i), "password": "correct horse"}
		status, header, raw := e.send(t, "POST", "/v1/signup", "", body)
		if status == http.StatusCreated && i < 100 {
			continue
		}
		if status != http.StatusTooManyRequests {
			t.Fatalf("sign-up %d of a flood: status %d, want 201 until a 429: %s", i, status, raw)
		}
		request, _ := json.Marshal(body)
		if err := spec.validate("POST", "/v1/signup", request, status, header, raw); err != nil {
			t.Errorf("answer does not match %s: %v", specFile, err)
		}
		t.Logf("sign-up %d of the flood got 429, Retry-After %s", i, header.Get("Retry-After"))
		break
	}

	if left := spec.unexercised(); len(left) > 0 {
		t.Errorf("operations without a validated 2xx answer: %v", left)
	}
}
