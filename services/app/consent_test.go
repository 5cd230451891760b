package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// rulesDoc holds the one table of consent rules; TestConsentMatrix reads its rows, so the
// document and what natter does cannot drift apart.
const rulesDoc = "../../docs/security.md"

// consentRule is one row of the table: what V gets of O.
type consentRule struct {
	relation, setting                          string
	messages, push, presence, typing, receipts string // "yes", "no" or (messages) "held"
}

// readConsentRules parses the table between the consent-rules markers of docs/security.md.
func readConsentRules(t *testing.T) []consentRule {
	t.Helper()
	f, err := os.Open(rulesDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []consentRule
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "<!-- consent-rules: end"):
			return rules
		case strings.HasPrefix(line, "<!-- consent-rules:"):
			in = true
		case in && strings.HasPrefix(line, "|") && !strings.HasPrefix(line, "|---") && !strings.HasPrefix(line, "| relationship"):
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.TrimSpace(c))
			}
			if len(cells) != 7 {
				t.Fatalf("%s: row %q has %d cells, want 7", rulesDoc, line, len(cells))
			}
			rules = append(rules, consentRule{cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]})
		}
	}
	t.Fatalf("%s: no consent-rules table (or no end marker)", rulesDoc)
	return nil
}

// relations sets up each relationship of the table between v and o and returns their shared
// conversation ("" for none).
var relations = map[string]func(s *apptest.System, v, o apptest.User) string{
	"stranger":          func(s *apptest.System, v, o apptest.User) string { return "" },
	"request sent by V": func(s *apptest.System, v, o apptest.User) string { return s.Request(v, o) },
	"request received by V": func(s *apptest.System, v, o apptest.User) string {
		return s.Request(o, v)
	},
	"request ignored by V": func(s *apptest.System, v, o apptest.User) string {
		conv := s.Request(o, v)
		s.Do("POST", "/v1/conversations/"+conv+"/ignore", v.Token, nil, http.StatusNoContent, nil)
		return conv
	},
	"direct": func(s *apptest.System, v, o apptest.User) string { return s.Direct(o, v) },
	"direct, V blocked O": func(s *apptest.System, v, o apptest.User) string {
		conv := s.Direct(o, v)
		s.Do("PUT", "/v1/blocks/"+o.ID, v.Token, nil, http.StatusNoContent, nil)
		return conv
	},
	"direct, O blocked V": func(s *apptest.System, v, o apptest.User) string {
		conv := s.Direct(o, v)
		s.Do("PUT", "/v1/blocks/"+v.ID, o.Token, nil, http.StatusNoContent, nil)
		return conv
	},
	"group": func(s *apptest.System, v, o apptest.User) string { return createGroup(s, o, "g", v).Conversation.ID },
	"group, V blocked O": func(s *apptest.System, v, o apptest.User) string {
		conv := createGroup(s, o, "g", v).Conversation.ID
		s.Do("PUT", "/v1/blocks/"+o.ID, v.Token, nil, http.StatusNoContent, nil)
		return conv
	},
	"group, O blocked V": func(s *apptest.System, v, o apptest.User) string {
		conv := createGroup(s, o, "g", v).Conversation.ID
		s.Do("PUT", "/v1/blocks/"+v.ID, o.Token, nil, http.StatusNoContent, nil)
		return conv
	},
}

// TestConsentMatrix checks every cell of the consent rules table in docs/security.md against a
// running natter: for each row, fresh users V and O in that relationship, O's presence setting
// as the row says, and M, V's accepted contact, whose events mark "everything before this has
// arrived" (fanout and presence handle events in order, so what V has not got of O's by the time
// M's later event arrives, V never gets). Push requests are read from the PUSH stream (the push
// target does not run, so they stay there).
func TestConsentMatrix(t *testing.T) {
	rules := readConsentRules(t)
	covered := map[string]bool{}
	for _, r := range rules {
		if relations[r.relation] == nil {
			t.Fatalf("%s names relationship %q, which the test cannot set up", rulesDoc, r.relation)
		}
		covered[r.relation] = true
	}
	for name := range relations {
		if !covered[name] {
			t.Errorf("relationship %q is set up by the test but has no row in %s", name, rulesDoc)
		}
	}
	s := apptest.Start(t, func(c *app.Config) {
		c.Targets = []string{app.TargetGateway, app.TargetAPI, app.TargetPersister, app.TargetFanout, app.TargetPresence}
	})
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rules {
		t.Run(fmt.Sprintf("%s/%s", r.relation, r.setting), func(t *testing.T) {
			parent := s.T
			s.T = t
			defer func() { s.T = parent }()
			checkConsentRule(t, s, js, i, r)
		})
	}
}

func checkConsentRule(t *testing.T, s *apptest.System, js jetstream.JetStream, i int, r consentRule) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, o, m := s.SignUp(fmt.Sprintf("viewer%d", i)), s.SignUp(fmt.Sprintf("other%d", i)), s.SignUp(fmt.Sprintf("marker%d", i))
	marker := s.Direct(v, m)
	conv := relations[r.relation](s, v, o)
	if r.setting != streams.PresenceEveryone {
		s.Do("PUT", "/v1/me/privacy", o.Token, map[string]string{"presence": r.setting}, http.StatusOK, nil)
	}
	direct := strings.HasPrefix(r.relation, "direct") // presence changes are pushed between direct contacts only
	yes := func(cell string) bool { return cell == "yes" }

	// Presence: O comes online, then M (pushed to V); then V asks.
	wv := live(s, v, "v")
	wo := live(s, o, "o")
	wm := live(s, m, "m")
	pushedO := false
	for {
		p := rawFrame(t, wv, protocol.TypePresence)
		u := p["users"].([]any)[0].(map[string]any)["user_id"]
		if u == o.ID {
			pushedO = true
		}
		if u == m.ID {
			break
		}
	}
	if want := yes(r.presence) && direct; pushedO != want {
		t.Errorf("presence: O's change pushed to V: %v, want %v", pushedO, want)
	}
	if got, want := ask(t, wv, o.ID), map[bool]string{true: "online", false: "unknown"}[yes(r.presence)]; got != want {
		t.Errorf("presence: V asked about O: %s, want %s", got, want)
	}

	// O's message, read mark and typing; then M's typing and message.
	var sent apptest.Frame
	if conv != "" {
		sent = sendText(wo, conv, "o1", "from o")
		if sent.Type != protocol.TypeAck {
			t.Fatalf("O's send: %+v", sent)
		}
		wo.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: conv, UpTo: sent.Seq})
		waitFor(t, func() bool {
			st, err := js.Stream(ctx, streams.ChatStream)
			if err != nil {
				return false
			}
			_, err = st.GetLastMsgForSubject(ctx, "chat."+conv+".read")
			return err == nil
		}, "O's read mark on CHAT")
		wo.Send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: conv, State: protocol.TypingStart})
		ask(t, wo, m.ID) // O's typing frame is handled (and published) before this answer
	}
	wm.Send(protocol.ClientFrame{Type: protocol.TypeTyping, ConversationID: marker, State: protocol.TypingStart})
	mark := sendText(wm, marker, "m1", "marker")
	var gotMsg, gotReceipt, gotTyping, markTyping, markMsg bool
	for !markTyping || !markMsg {
		f := wv.Next(wait)
		var raw map[string]any
		_ = json.Unmarshal(f.Raw, &raw)
		switch f.Type {
		case protocol.TypeMessage:
			gotMsg = gotMsg || f.SenderID == o.ID
			markMsg = markMsg || f.MessageID == mark.MessageID
		case protocol.TypeReceipt:
			gotReceipt = gotReceipt || raw["user_id"] == o.ID
		case protocol.TypeTyping:
			gotTyping = gotTyping || raw["user_id"] == o.ID
			markTyping = markTyping || raw["user_id"] == m.ID
		}
	}
	if gotMsg != yes(r.messages) {
		t.Errorf("messages: V's device got O's message live: %v, want %v (%s)", gotMsg, yes(r.messages), r.messages)
	}
	if gotReceipt != yes(r.receipts) {
		t.Errorf("receipts: V's device got O's read mark: %v, want %v", gotReceipt, yes(r.receipts))
	}
	if gotTyping != yes(r.typing) {
		t.Errorf("typing: V's device got O's typing: %v, want %v", gotTyping, yes(r.typing))
	}
	if conv != "" {
		if h, u := historyHas(s, v, conv, sent.MessageID); h != yes(r.messages) || u != yes(r.messages) {
			t.Errorf("messages: in V's history %v, counted unread %v; want %v (%s)", h, u, yes(r.messages), r.messages)
		}
	}

	// Push: V has no connected device; O sends again, then M.
	_ = wv.Conn.Close(websocket.StatusNormalClosure, "bye")
	routes, err := js.KeyValue(ctx, streams.RoutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := routes.Get(ctx, streams.RouteKey(v.ID, "v"))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	}, "V's route removed")
	var again apptest.Frame
	if conv != "" {
		again = sendText(wo, conv, "o2", "again from o")
	}
	mark2 := sendText(wm, marker, "m2", "marker 2")
	pushes := pushRequests(ctx, t, js, v.ID, mark2.MessageID)
	if got := conv != "" && slices.Contains(pushes, again.MessageID); got != yes(r.push) {
		t.Errorf("push: a push request for O's message to V: %v, want %v", got, yes(r.push))
	}

	// Sync: a device of V catching up from the start gets O's messages as live delivery did.
	if got := syncHas(s, v, "v2", sent.MessageID); conv != "" && got != yes(r.messages) {
		t.Errorf("messages: in V's catch-up from cursor 0: %v, want %v (%s)", got, yes(r.messages), r.messages)
	}

	// Held messages are V's once V accepts.
	if r.messages == "held" {
		s.Do("POST", "/v1/conversations/"+conv+"/accept", v.Token, nil, http.StatusOK, nil)
		if h, u := historyHas(s, v, conv, sent.MessageID); !h || !u {
			t.Errorf("held: after the accept, in V's history %v, counted unread %v; want both", h, u)
		}
		if !syncHas(s, v, "v3", sent.MessageID) {
			t.Error("held: after the accept, not in V's catch-up from cursor 0")
		}
	}
}

// syncHas connects a new device of v from cursor 0 and reports whether its catch-up holds
// message id.
func syncHas(s *apptest.System, v apptest.User, device, id string) bool {
	zero := uint64(0)
	ws := apptest.Dial(s.T, apptest.WSURLFor(s.WSURL, v.Token, device, &zero))
	defer ws.Conn.CloseNow()
	found := false
	for {
		f := ws.NextOfAny(wait, protocol.TypeMessage, protocol.TypeSynced)
		if f.Type == protocol.TypeSynced {
			return found
		}
		found = found || (id != "" && f.MessageID == id)
	}
}

// historyHas reports whether v's history of conv holds message id, and whether the conversation
// list counts anything unread in conv for v.
func historyHas(s *apptest.System, v apptest.User, conv, id string) (inHistory, unread bool) {
	var page struct {
		Messages []struct {
			MessageID string `json:"message_id"`
		} `json:"messages"`
	}
	s.Do("GET", "/v1/conversations/"+conv+"/messages", v.Token, nil, http.StatusOK, &page)
	for _, msg := range page.Messages {
		inHistory = inHistory || msg.MessageID == id
	}
	var list struct {
		Conversations []struct {
			ID     string `json:"id"`
			Unread int    `json:"unread"`
		} `json:"conversations"`
	}
	s.Do("GET", "/v1/conversations", v.Token, nil, http.StatusOK, &list)
	for _, c := range list.Conversations {
		unread = unread || (c.ID == conv && c.Unread > 0)
	}
	return inHistory, unread
}

// pushRequests lists the message ids of the push requests for user on the PUSH stream, once the
// one for until is there.
func pushRequests(ctx context.Context, t *testing.T, js jetstream.JetStream, user, until string) []string {
	t.Helper()
	stream, err := js.Stream(ctx, streams.PushStream)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	waitFor(t, func() bool {
		ids = ids[:0]
		for seq := uint64(1); ; seq++ {
			msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(streams.PushSubject(user)))
			if err != nil {
				break // no further request for user
			}
			var req streams.PushRequest
			if json.Unmarshal(msg.Data, &req) == nil {
				ids = append(ids, req.MessageID)
			}
			seq = msg.Sequence
		}
		return slices.Contains(ids, until)
	}, "the push request for the marker")
	return ids
}

// The API answers a consent change only once it has settled (the barrier window after its event
// was stored, --barrier-window, here widened to 50 ms): fanout routes a chunk on a barrier
// passed within that window before it, so only then is every message sent after the answer
// routed by the change.
func TestConsentChangesAreAnsweredOnceSettled(t *testing.T) {
	const window = 50 * time.Millisecond
	s := apptest.Start(t, func(c *app.Config) { c.Streams.BarrierWindow = window })
	alice, bob, carol := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("carol")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	state, err := js.Stream(ctx, streams.StateStream)
	if err != nil {
		t.Fatal(err)
	}
	settled := func(step, subject string) {
		t.Helper()
		answered := time.Now()
		m, err := state.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if d := answered.Sub(m.Time); d < window {
			t.Errorf("%s: answered %s after its event was stored, within the barrier window %s", step, d, window)
		}
	}
	conv := s.Request(alice, carol)
	settled("open a request", streams.DirectSubject(conv))
	s.Do("POST", "/v1/conversations/"+conv+"/accept", carol.Token, nil, http.StatusOK, nil)
	settled("accept it", streams.DirectSubject(conv))
	for range 3 {
		s.Do("PUT", "/v1/blocks/"+bob.ID, alice.Token, nil, http.StatusNoContent, nil)
		settled("block", streams.BlockSubject(alice.ID, bob.ID))
		s.Do("DELETE", "/v1/blocks/"+bob.ID, alice.Token, nil, http.StatusNoContent, nil)
		settled("unblock", streams.BlockSubject(alice.ID, bob.ID))
	}
	s.Do("PUT", "/v1/me/privacy", alice.Token, map[string]string{"presence": "contacts"}, http.StatusOK, nil)
	settled("presence visibility", streams.PrivacySubject(alice.ID))
}
