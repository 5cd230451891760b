package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

const wait = 15 * time.Second

type account struct {
	ID, Handle, Token string
}

// password is the password signUp gives handle.
func password(handle string) string { return "pw-" + handle + "-long" }

func signUp(t *testing.T, api, handle string) account {
	t.Helper()
	var out struct {
		User struct {
			ID     string `json:"id"`
			Handle string `json:"handle"`
		} `json:"user"`
		Token string `json:"token"`
	}
	doJSON(t, "POST", api+"/v1/signup", "", map[string]string{"handle": handle, "password": password(handle)}, http.StatusCreated, &out)
	var login struct {
		Token string `json:"token"`
	}
	doJSON(t, "POST", api+"/v1/login", "", map[string]string{"handle": handle, "password": password(handle)}, http.StatusOK, &login)
	if login.Token == "" {
		t.Fatal("login gave no token")
	}
	return account{ID: out.User.ID, Handle: out.User.Handle, Token: login.Token}
}

// doJSON makes one API call and decodes its answer into out; want 0 takes any 2xx. A 503
// (unavailable: a store or NATS timeout, or every bcrypt slot busy, as happens while a cluster
// forms on a loaded machine) is retried for up to 30 s, as a client would, and logged.
func doJSON(t *testing.T, method, url, token string, body any, want int, out any) {
	t.Helper()
	status, raw := apptest.Request(t, method, url, token, body)
	for deadline := time.Now().Add(30 * time.Second); status == http.StatusServiceUnavailable && want != status && time.Now().Before(deadline); {
		t.Logf("%s %s: 503, retrying: %s", method, url, raw)
		time.Sleep(500 * time.Millisecond)
		status, raw = apptest.Request(t, method, url, token, body)
	}
	if (want == 0 && (status < 200 || status > 299)) || (want != 0 && status != want) {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
}

// openDirect has a open a direct conversation with b, and b accept it; it returns its id.
func openDirect(t *testing.T, api string, a, b account) string {
	t.Helper()
	var opened struct {
		Conversation struct{ ID string } `json:"conversation"`
	}
	doJSON(t, "POST", api+"/v1/conversations/direct", a.Token, map[string]string{"user_id": b.ID}, 0, &opened)
	doJSON(t, "POST", api+"/v1/conversations/direct", b.Token, map[string]string{"user_id": a.ID}, 0, nil) // accepts
	return opened.Conversation.ID
}

func connect(t *testing.T, wsURL string, a account, device string) *apptest.WS {
	t.Helper()
	ws := apptest.Dial(t, apptest.WSURLFor(wsURL, a.Token, device, nil))
	if f := ws.Next(wait); f.Type != protocol.TypeWelcome {
		t.Fatalf("first frame %+v", f)
	}
	ws.NextOf(protocol.TypeSynced, wait)
	return ws
}

type historyPage struct {
	Messages []struct {
		Seq       uint64 `json:"seq"`
		MessageID string `json:"message_id"`
		SenderID  string `json:"sender_id"`
		Text      string `json:"text"`
	} `json:"messages"`
}

// TestOneToOneChatThroughTheRealBinary is the foundation's acceptance test: sign-up and login over
// HTTP, a direct conversation, one user on two devices, messages both ways with acks, order and
// delivery to every device, idempotent retries, limits and bad input, Ctrl-C with a reconnect
// close code, and the whole history after a restart.
func TestOneToOneChatThroughTheRealBinary(t *testing.T) {
	dataDir := t.TempDir()
	p := StartNatter(t, dataDir)
	api, wsURL := p.Addrs.API, p.Addrs.WebSocket

	alice, bob := signUp(t, api, "alice"), signUp(t, api, "bob")
	var opened [2]struct {
		Conversation struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	doJSON(t, "POST", api+"/v1/conversations/direct", alice.Token, map[string]string{"user_id": bob.ID}, 0, &opened[0])
	doJSON(t, "POST", api+"/v1/conversations/direct", bob.Token, map[string]string{"user_id": alice.ID}, 0, &opened[1])
	conv := opened[0].Conversation.ID
	if conv == "" || conv != opened[1].Conversation.ID {
		t.Fatalf("direct conversation differs by side: %q vs %q", conv, opened[1].Conversation.ID)
	}

	aPhone, aLaptop, bPhone := connect(t, wsURL, alice, "phone"), connect(t, wsURL, alice, "laptop"), connect(t, wsURL, bob, "phone")
	devices := map[string]*apptest.WS{"alice/phone": aPhone, "alice/laptop": aLaptop, "bob/phone": bPhone}

	// Messages both ways, from three devices.
	type sent struct {
		seq  uint64
		id   string
		text string
	}
	var log []sent
	senders := []struct {
		ws   *apptest.WS
		name string
	}{{aPhone, "a"}, {bPhone, "b"}, {aLaptop, "l"}}
	for i := 0; i < 30; i++ {
		s := senders[i%len(senders)]
		text := fmt.Sprintf("%s says %d", s.name, i)
		s.ws.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: fmt.Sprintf("c%d", i), Text: text})
		ack := s.ws.NextOf(protocol.TypeAck, wait)
		if ack.Seq == 0 || ack.MessageID == "" || ack.ClientMsgID != fmt.Sprintf("c%d", i) {
			t.Fatalf("ack %+v", ack)
		}
		if len(log) > 0 && ack.Seq <= log[len(log)-1].seq {
			t.Fatalf("seq %d not after %d", ack.Seq, log[len(log)-1].seq)
		}
		log = append(log, sent{ack.Seq, ack.MessageID, text})
	}
	// Retries of one client message id: three acks, one message.
	var retryAcks []apptest.Frame
	for i := 0; i < 3; i++ {
		bPhone.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: "retry-me", Text: "exactly once"})
		retryAcks = append(retryAcks, bPhone.NextOf(protocol.TypeAck, wait))
	}
	for _, a := range retryAcks[1:] {
		if a.MessageID != retryAcks[0].MessageID || a.Seq != retryAcks[0].Seq || !a.Duplicate {
			t.Fatalf("retry acks differ: %+v", retryAcks)
		}
	}
	log = append(log, sent{retryAcks[0].Seq, retryAcks[0].MessageID, "exactly once"})

	// Every device gets every message once, in order.
	for name, ws := range devices {
		for i, want := range log {
			f := ws.NextOf(protocol.TypeMessage, wait)
			if f.Seq != want.seq || f.MessageID != want.id || f.Text != want.text {
				t.Fatalf("%s message %d = %+v, want %+v", name, i, f, want)
			}
		}
	}

	// Limits and bad input: coded errors, the connection stays usable.
	for _, tc := range []struct {
		raw  string
		code protocol.Code
	}{
		{`{"type":"send","client_msg_id":"big","conversation_id":"` + conv + `","text":"` + strings.Repeat("a", protocol.MaxTextRunes+1) + `"}`, protocol.CodeTextTooLong},
		{"{\"type\":\"send\",\"text\":\"\xff\xfe\"}", protocol.CodeInvalidUTF8},
		{`{"type":"send",`, protocol.CodeInvalidJSON},
		{`{"type":"dance"}`, protocol.CodeUnknownType},
		{`{"type":"send","text":"` + strings.Repeat("x", protocol.MaxFrameBytes) + `"}`, protocol.CodeFrameTooLarge},
		{`{"type":"send","client_msg_id":"nm","conversation_id":"dsomebodyelses","text":"hi"}`, protocol.CodeNotMember},
	} {
		aPhone.SendRaw([]byte(tc.raw))
		if f := aPhone.NextOf(protocol.TypeError, wait); protocol.Code(f.Code) != tc.code {
			t.Fatalf("bad input %.40q: got %+v, want %s", tc.raw, f, tc.code)
		}
	}
	emoji := strings.Repeat("🙂", protocol.MaxTextRunes)
	aPhone.Send(protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: "emoji", Text: emoji})
	emojiAck := aPhone.NextOf(protocol.TypeAck, wait)
	log = append(log, sent{emojiAck.Seq, emojiAck.MessageID, emoji})
	if f := bPhone.NextOf(protocol.TypeMessage, wait); f.MessageID != emojiAck.MessageID || f.Text != emoji {
		t.Fatalf("100,000 emoji not delivered intact (got %d bytes)", len(f.Text))
	}

	// Ctrl-C: every socket closes with a code that says "reconnect".
	p.Interrupt()
	for name, ws := range devices {
		if code := ws.CloseStatus(wait); code != websocket.StatusCode(protocol.CloseShutdown) {
			t.Errorf("%s closed with %d on shutdown, want %d", name, code, protocol.CloseShutdown)
		}
	}

	// Restart on the same data: the accounts, the conversation and the whole history are there.
	p2 := StartNatter(t, dataDir)
	var page historyPage
	doJSON(t, "GET", fmt.Sprintf("%s/v1/conversations/%s/messages?limit=200", p2.Addrs.API, conv), alice.Token, nil, http.StatusOK, &page)
	if len(page.Messages) != len(log) {
		t.Fatalf("history after restart has %d messages, want %d", len(page.Messages), len(log))
	}
	for i, m := range page.Messages { // newest first
		want := log[len(log)-1-i]
		if m.Seq != want.seq || m.MessageID != want.id || m.Text != want.text {
			t.Fatalf("history[%d] = seq %d %q, want seq %d %q", i, m.Seq, m.MessageID, want.seq, want.id)
		}
	}
	var older historyPage
	doJSON(t, "GET", fmt.Sprintf("%s/v1/conversations/%s/messages?before=%d&limit=5", p2.Addrs.API, conv, log[10].seq), bob.Token, nil, http.StatusOK, &older)
	if len(older.Messages) != 5 || older.Messages[0].Seq != log[9].seq || older.Messages[4].Seq != log[5].seq {
		t.Fatalf("older page wrong: %+v", older.Messages)
	}
	// Tokens issued before the restart still work; a reconnecting device syncs what it missed.
	cursor := log[len(log)-3].seq
	ws := apptest.Dial(t, apptest.WSURLFor(p2.Addrs.WebSocket, bob.Token, "phone", &cursor))
	ws.NextOf(protocol.TypeWelcome, wait)
	for _, want := range log[len(log)-2:] {
		if f := ws.NextOf(protocol.TypeMessage, wait); f.Seq != want.seq {
			t.Fatalf("sync after restart: got seq %d, want %d", f.Seq, want.seq)
		}
	}
	if f := ws.NextOf(protocol.TypeSynced, wait); f.Cursor < log[len(log)-1].seq {
		t.Fatalf("synced cursor %d", f.Cursor)
	}
	p2.Interrupt()
}
