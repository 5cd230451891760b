package asyncapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, apptest.IgnoreLibraryGoroutines()...)
}

// TestRealTrafficMatchesTheSpec drives a whole natter through every server frame type and
// checks each frame, both ways, and each message on natter's subjects, against the spec.
func TestRealTrafficMatchesTheSpec(t *testing.T) {
	sp := loadSpec(t)
	// Deliveries to the process's own gateway go over NATS too, so that the deliver channel
	// carries real traffic.
	s := apptest.Start(t, func(c *app.Config) { c.Fanout.PushOnlineLedger, c.DeliverOverNATS = true, true })
	rec := record(t, sp, s.Run.NC)
	seen := map[string]int{}

	alice, bob, carol, dave := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol"), s.SignUp("dave")
	zero := uint64(0)
	a := dial(t, sp, s, alice, "a-phone", &zero, seen)
	b := dial(t, sp, s, bob, "b-laptop", nil, seen)
	direct := s.Request(alice, bob)
	a.expect(protocol.TypeRequest) // open: to both
	b.expect(protocol.TypeRequest)
	s.Do("POST", "/v1/conversations/"+direct+"/accept", bob.Token, nil, http.StatusOK, nil)
	a.expect(protocol.TypeRequest) // accepted
	b.expect(protocol.TypeRequest)
	a.send(protocol.ClientFrame{Type: protocol.TypePresence, ID: "q0", UserIDs: []string{bob.ID}})
	a.expect(protocol.TypePresence) // bob is online; they share a direct conversation

	a.send(protocol.ClientFrame{Type: protocol.TypeSend, ID: "s1", ClientMsgID: "c1", ConversationID: direct, Text: "hi bob"})
	ack := a.expect(protocol.TypeAck)
	b.expect(protocol.TypeMessage)
	a.send(protocol.ClientFrame{Type: protocol.TypeSend, ClientMsgID: "c1", ConversationID: direct, Text: "hi bob", Resend: true})
	if d := a.expect(protocol.TypeAck); !d.Duplicate {
		t.Errorf("ack %s, want the duplicate of %s", d.Raw, ack.Raw)
	}
	a.send(protocol.ClientFrame{Type: protocol.TypePing, ID: "p1"})
	a.expect(protocol.TypePong)
	a.send(protocol.ClientFrame{Type: protocol.TypeAuth, ID: "t1", Token: alice.Token})
	if au := a.expect(protocol.TypeAuth); au.Ref != "t1" || au.ExpiresAt == 0 {
		t.Errorf("auth %s, want the answer to t1 with expires_at", au.Raw)
	}
	a.sendBad(`{"type":"send","id":"bad1","client_msg_id":"c2","conversation_id":"` + direct + `","text":""}`)
	if e := a.expect(protocol.TypeError); e.Ref != "bad1" || e.Code != string(protocol.CodeTextEmpty) {
		t.Errorf("error %s, want text_empty for bad1", e.Raw)
	}
	a.sendBad(`{"type":`)
	if e := a.expect(protocol.TypeError); e.Ref != "" || e.Code != string(protocol.CodeInvalidJSON) {
		t.Errorf("error %s, want invalid_json without ref", e.Raw)
	}
	a.sendBad(`{"type":"shout","id":"bad2"}`)
	if e := a.expect(protocol.TypeError); e.Ref != "bad2" || e.Code != string(protocol.CodeUnknownType) {
		t.Errorf("error %s, want unknown_type for bad2", e.Raw)
	}

	// Edits and deletes: alice edits her message, bob cannot; bob deletes his own for everyone
	// and alice's for himself.
	a.send(protocol.ClientFrame{Type: protocol.TypeEdit, ClientMsgID: "e1", ConversationID: direct, TargetSeq: ack.Seq, Text: "hi bob!"})
	a.expectEach(protocol.TypeAck, protocol.TypeEdit)
	b.expect(protocol.TypeEdit)
	b.send(protocol.ClientFrame{Type: protocol.TypeEdit, ClientMsgID: "e2", ConversationID: direct, TargetSeq: ack.Seq, Text: "not mine"})
	if e := b.expect(protocol.TypeError); e.Code != string(protocol.CodeNotAllowed) {
		t.Errorf("error %s, want not_allowed", e.Raw)
	}
	b.send(protocol.ClientFrame{Type: protocol.TypeSend, ClientMsgID: "b1", ConversationID: direct, Text: "oops"})
	oops := b.expect(protocol.TypeAck)
	b.send(protocol.ClientFrame{Type: protocol.TypeDelete, ClientMsgID: "d1", ConversationID: direct, TargetSeq: oops.Seq})
	b.expect(protocol.TypeAck)
	a.expect(protocol.TypeDelete)
	b.send(protocol.ClientFrame{Type: protocol.TypeDelete, ClientMsgID: "h1", ConversationID: direct, TargetSeq: ack.Seq, For: protocol.DeleteForMe})
	b.expectEach(protocol.TypeAck, protocol.TypeHide)

	b.send(protocol.ClientFrame{Type: protocol.TypeDelivered, ConversationID: direct, UpTo: ack.Seq})
	b.send(protocol.ClientFrame{Type: protocol.TypeRead, ID: "r1", ConversationID: direct, UpTo: ack.Seq})
	a.expect(protocol.TypeReceipt)
	b.send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: direct, State: protocol.TypingStart})
	a.expect(protocol.TypeTyping)
	a.send(protocol.ClientFrame{Type: protocol.TypePresence, ID: "q1", UserIDs: []string{bob.ID, carol.ID}})
	if p := a.expect(protocol.TypePresence); p.Ref != "q1" {
		t.Errorf("presence %s, want the answer to q1", p.Raw)
	}

	// A group with dave, who never connects: carol's message to it asks for a push to him.
	var g struct {
		Conversation struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	s.Do("POST", "/v1/groups", alice.Token, map[string]any{"name": "trip", "member_ids": []string{bob.ID, dave.ID}}, http.StatusCreated, &g)
	group := g.Conversation.ID
	a.expect(protocol.TypeMember) // created
	a.expect(protocol.TypeMember) // invited
	for _, u := range []apptest.User{bob, dave} {
		s.Do("POST", "/v1/conversations/"+group+"/accept", u.Token, nil, http.StatusOK, nil)
		a.expect(protocol.TypeMember)
	}
	c := dial(t, sp, s, carol, "c-web", nil, seen)
	s.Do("POST", "/v1/conversations/"+group+"/members", alice.Token, map[string]any{"user_ids": []string{carol.ID}}, http.StatusOK, nil)
	a.expect(protocol.TypeMember)
	s.Do("POST", "/v1/conversations/"+group+"/accept", carol.Token, nil, http.StatusOK, nil)
	a.expect(protocol.TypeMember)
	c.expect(protocol.TypeMember)
	s.Do("PUT", "/v1/conversations/"+group+"/mute", carol.Token, map[string]bool{"muted": true}, http.StatusOK, nil)
	c.send(protocol.ClientFrame{Type: protocol.TypeSend, ClientMsgID: "c3", ConversationID: group, Text: "who drives?"})
	cm := c.expectEach(protocol.TypeAck, protocol.TypeMessage)[protocol.TypeMessage]
	a.expect(protocol.TypeMessage)
	// Catch-up frames come from the store, not from fanout: carol's second device replays all.
	s.WaitPersisted(cm.Seq)
	c2 := &client{t: t, spec: sp, name: "c-laptop", ws: apptest.Dial(t, apptest.WSURLFor(s.WSURL, carol.Token, "c-laptop", &zero)), seen: seen}
	c2.expect(protocol.TypeWelcome)
	if f := c2.expect(protocol.TypeMember); f.Seq >= cm.Seq {
		t.Errorf("catch-up began with %s, want the member event before seq %d", f.Raw, cm.Seq)
	}
	c2.expect(protocol.TypeMessage)
	c2.expect(protocol.TypeSynced)
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	waitForLedger(t, js, dave.ID)

	// State events: a profile change, a push token set and removed, a logout, a deletion.
	s.Do("PATCH", "/v1/me", carol.Token, map[string]string{"display_name": "Carol"}, http.StatusOK, nil)
	s.Do("PUT", "/v1/devices/c-web/push-token", carol.Token, map[string]string{"platform": "web", "token": "fcm-carol"}, http.StatusOK, nil)
	s.Do("DELETE", "/v1/devices/c-web/push-token", carol.Token, nil, http.StatusNoContent, nil)
	// The logout ends the session it is made with (and closes its sockets): a session of its own.
	s.Do("POST", "/v1/logout", s.LogIn(carol).Token, map[string]string{"device_id": "c-web"}, http.StatusNoContent, nil)
	s.Do("DELETE", "/v1/me", dave.Token, map[string]string{"password": "password-dave"}, http.StatusNoContent, nil)
	// Consent: a block and an unblock, a presence setting.
	s.Do("PUT", "/v1/blocks/"+alice.ID, carol.Token, nil, http.StatusNoContent, nil)
	s.Do("DELETE", "/v1/blocks/"+alice.ID, carol.Token, nil, http.StatusNoContent, nil)
	s.Do("PUT", "/v1/me/privacy", carol.Token, map[string]string{"presence": "contacts"}, http.StatusOK, nil)

	// Bob's last device goes: alice is told he is offline.
	b.drain(200 * time.Millisecond)
	if err := b.ws.Conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	a.expect(protocol.TypePresence)
	for _, cl := range []*client{a, c, c2} {
		cl.drain(200 * time.Millisecond)
	}

	for typ := range sp.server {
		if seen[typ] == 0 {
			t.Errorf("no %s frame was received; the scenario must draw one", typ)
		}
	}
	onSubjects := rec.check(t, sp, s.Run.NC)
	for _, ch := range []string{"chat", "presenceEvents", "push", "typing", "deliver", "routesBucket", "presenceBucket", "pushLedgerBucket", "pushSettingsBucket",
		"stateAccount", "stateDirect", "stateDevice", "statePush", "stateBlock", "statePrivacy"} {
		if onSubjects[ch] == 0 {
			t.Errorf("nothing was published on channel %s", ch)
		}
	}
	kinds := checkChatStream(t, sp, js)
	for _, kind := range []string{streams.KindMsg, streams.KindMember, streams.KindRead, streams.KindDelivered, streams.KindEdit, streams.KindDelete, streams.KindHide} {
		if kinds[kind] == 0 {
			t.Errorf("no %s event in CHAT", kind)
		}
	}
	if checkBuckets(t, sp, js)[streams.GatewaysBucket] == 0 {
		t.Errorf("no value in the %s bucket", streams.GatewaysBucket)
	}
	t.Logf("server frames %v; channels %v", seen, onSubjects)
}

// waitForLedger waits until the push ledger has an entry of the user: the push service took his
// request.
func waitForLedger(t *testing.T, js jetstream.JetStream, user string) {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, streams.PushLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for k := range keys.Keys() {
			found = found || strings.HasPrefix(k, user+".")
		}
		if found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no push ledger entry for %s within %s", user, wait)
}
