package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

type summary struct {
	ID      string `json:"id"`
	ReadSeq uint64 `json:"read_seq"`
	Unread  int    `json:"unread"`
}

func unread(s *apptest.System, u apptest.User, conv string) summary {
	s.T.Helper()
	var out struct {
		Conversations []summary `json:"conversations"`
	}
	s.Do("GET", "/v1/conversations", u.Token, nil, http.StatusOK, &out)
	for _, c := range out.Conversations {
		if c.ID == conv {
			return c
		}
	}
	s.T.Fatalf("%s not in the list", conv)
	return summary{}
}

// rawFrame reads the next frame of typ as raw JSON (for frames the test helper does not model).
func rawFrame(t *testing.T, ws *apptest.WS, typ string) map[string]any {
	t.Helper()
	f := ws.NextOf(typ, wait)
	var m map[string]any
	if err := json.Unmarshal(f.Raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReadOnOneDeviceClearsUnreadEverywhere(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a1, a2, b := live(s, alice, "a1"), live(s, alice, "a2"), live(s, bob, "b")
	var last uint64
	for _, txt := range []string{"one", "two", "three"} {
		last = sendText(b, conv, "m-"+txt, txt).Seq
	}
	for _, ws := range []*apptest.WS{a1, a2} {
		for range 3 {
			nextEvent(ws)
		}
	}
	if got := unread(s, alice, conv); got.Unread != 3 || got.ReadSeq != 0 {
		t.Fatalf("before reading: %+v, want 3 unread", got)
	}
	if got := unread(s, bob, conv); got.Unread != 0 {
		t.Fatalf("own messages counted as unread: %+v", got)
	}
	a1.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: conv, UpTo: last})
	// alice's other device and bob both hear it live.
	for name, ws := range map[string]*apptest.WS{"alice's other device": a2, "bob": b} {
		r := ws.NextOf(protocol.TypeReceipt, wait)
		if r.ConversationID != conv {
			t.Fatalf("%s got receipt %+v", name, r)
		}
	}
	waitFor(t, func() bool { return unread(s, alice, conv).Unread == 0 }, "unread to clear after reading")
	if got := unread(s, alice, conv); got.ReadSeq != last {
		t.Fatalf("read_seq %d, want %d", got.ReadSeq, last)
	}
	// A stale, lower watermark never moves it back.
	a2.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: conv, UpTo: last - 1})
	sendText(b, conv, "m-four", "four")
	waitFor(t, func() bool { return unread(s, alice, conv).Unread == 1 }, "one new unread message")
	if got := unread(s, alice, conv); got.ReadSeq != last {
		t.Fatalf("watermark moved back to %d", got.ReadSeq)
	}
	var rc struct {
		Members []struct {
			UserID          string
			Delivered, Read uint64
		} `json:"members"`
		ReadByAll uint64 `json:"read_by_all"`
	}
	s.Do("GET", "/v1/conversations/"+conv+"/receipts", bob.Token, nil, http.StatusOK, &rc)
	if rc.ReadByAll != last {
		t.Fatalf("receipts for bob: %+v, want alice's read %d", rc, last)
	}
}

func TestTypingIsRelayedToMembersOnly(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, eve := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("eve")
	conv := s.Direct(alice, bob)
	a, b, e := live(s, alice, "a"), live(s, bob, "b"), live(s, eve, "e")
	a.Send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: conv, State: protocol.TypingStart})
	got := rawFrame(t, b, protocol.TypeTyping)
	if got["conversation_id"] != conv || got["state"] != protocol.TypingStart || got["user_id"] != alice.ID || got["expires_in_ms"] != float64(protocol.TypingExpires) {
		t.Fatalf("bob got %v", got)
	}
	e.Send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: conv, State: protocol.TypingStart, ID: "t"})
	if f := e.NextOf(protocol.TypeError, wait); f.Code != string(protocol.CodeNotMember) {
		t.Fatalf("non-member typing answered %+v", f)
	}
	// Never stored: the conversation's history stays empty.
	var page struct {
		Messages []any `json:"messages"`
	}
	s.Do("GET", "/v1/conversations/"+conv+"/messages", alice.Token, nil, http.StatusOK, &page)
	if len(page.Messages) != 0 {
		t.Fatalf("typing left history behind: %v", page.Messages)
	}
}

func TestPresenceFollowsTheLastDevice(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) {
		c.Gateway.HeartbeatInterval, c.Gateway.HeartbeatTimeout = 100*time.Millisecond, time.Second // a live socket under -race on a busy machine may take 200 ms to answer a ping
	})
	alice, bob, eve := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("eve")
	s.Direct(alice, bob)
	b := live(s, bob, "b")
	a1 := live(s, alice, "a1")
	if p := presenceOf(t, b, alice.ID); p != "online" {
		t.Fatalf("after alice's first device: %s", p)
	}
	// A second device changes nothing; closing one of two keeps alice online.
	a2 := live(s, alice, "a2")
	_ = a1.Conn.Close(websocket.StatusNormalClosure, "bye")
	if got := ask(t, b, alice.ID); got != "online" {
		t.Fatalf("with one device left alice is %s", got)
	}
	// The last device stops answering heartbeats: alice goes offline and bob is told.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	dead, _, err := websocket.Dial(ctx, apptest.WSURLFor(s.WSURL, alice.Token, "a3", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.CloseNow()
	_ = a2.Conn.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, func() bool { return ask(t, b, alice.ID) == "offline" }, "alice offline once her unresponsive device timed out")
	if p := ask(t, b, eve.ID); p != "unknown" {
		t.Fatalf("a stranger's presence is %q, want unknown", p)
	}
}

// presenceOf waits for a live presence change of user.
func presenceOf(t *testing.T, ws *apptest.WS, user string) string {
	t.Helper()
	for {
		m := rawFrame(t, ws, protocol.TypePresence)
		users, _ := m["users"].([]any)
		if len(users) == 1 {
			u := users[0].(map[string]any)
			if u["user_id"] == user {
				return u["status"].(string)
			}
		}
	}
}

// ask queries user's presence over the socket.
func ask(t *testing.T, ws *apptest.WS, user string) string {
	t.Helper()
	ws.Send(protocol.ClientFrame{Type: protocol.TypePresence, ID: "q", UserIDs: []string{user}})
	for {
		m := rawFrame(t, ws, protocol.TypePresence)
		if m["ref"] != "q" {
			continue
		}
		users := m["users"].([]any)
		return users[0].(map[string]any)["status"].(string)
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
