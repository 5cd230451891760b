package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, apptest.IgnoreLibraryGoroutines()...)
}

const wait = 10 * time.Second

func send(conv, cmid, text string) protocol.ClientFrame {
	return protocol.ClientFrame{Type: protocol.TypeSend, ConversationID: conv, ClientMsgID: cmid, Text: text}
}

func dial(s *apptest.System, u apptest.User, device string, cursor *uint64) *apptest.WS {
	ws := apptest.Dial(s.T, apptest.WSURLFor(s.WSURL, u.Token, device, cursor))
	w := ws.Next(wait)
	if w.Type != protocol.TypeWelcome || w.DeviceID != device {
		s.T.Fatalf("first frame %+v, want welcome for %s", w, device)
	}
	ws.NextOf(protocol.TypeSynced, wait)
	return ws
}

func TestSendIsAckedAndDeliveredToEveryDevice(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a1, a2, b1 := dial(s, alice, "a1", nil), dial(s, alice, "a2", nil), dial(s, bob, "b1", nil)

	a1.Send(send(conv, "m1", "hello bob"))
	ack := a1.NextOf(protocol.TypeAck, wait)
	if ack.Seq == 0 || ack.MessageID == "" || ack.Duplicate || ack.Ref != "m1" {
		t.Fatalf("ack %+v", ack)
	}
	for name, ws := range map[string]*apptest.WS{"sender device": a1, "sender's other device": a2, "recipient": b1} {
		f := ws.NextOf(protocol.TypeMessage, wait)
		if f.Seq != ack.Seq || f.MessageID != ack.MessageID || f.Text != "hello bob" || f.SenderID != alice.ID || f.SenderDevice != "a1" {
			t.Errorf("%s got %+v, want the acked message", name, f)
		}
	}
}

func TestRetriesMakeOneMessage(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a, b := dial(s, alice, "a", nil), dial(s, bob, "b", nil)

	var acks []apptest.Frame
	for i := 0; i < 3; i++ {
		a.Send(send(conv, "same-id", "once"))
		acks = append(acks, a.NextOf(protocol.TypeAck, wait))
	}
	for i, ack := range acks {
		if ack.MessageID != acks[0].MessageID || ack.Seq != acks[0].Seq || ack.Duplicate != (i > 0) {
			t.Fatalf("ack %d = %+v, want the first ack again (duplicate=%v)", i, ack, i > 0)
		}
	}
	// After the retries, one marker message: b must see "once" exactly once, then the marker.
	a.Send(send(conv, "marker", "marker"))
	var texts []string
	for {
		f := b.NextOf(protocol.TypeMessage, wait)
		texts = append(texts, f.Text)
		if f.Text == "marker" {
			break
		}
	}
	if strings.Join(texts, ",") != "once,marker" {
		t.Fatalf("recipient saw %v, want [once marker]", texts)
	}
}

// A send marked resend is one message however long after the first attempt it comes: past
// JetStream's duplicate window the gateway finds the first in the store and answers with its ack.
func TestAResendAfterTheDuplicateWindowIsStillOneMessage(t *testing.T) {
	resendAfterTheWindow(t, 500*time.Millisecond, 0, false)
}

// A resend after the duplicate window, while the persister has not stored the first attempt yet,
// is still one message: the gateway finds the first attempt in the stream above the persister's
// ack floor (with a store lookup alone it misses it, and the resend is published again, a second
// message with a seq of its own).
func TestAResendWhileThePersisterLagsIsStillOneMessage(t *testing.T) {
	resendAfterTheWindow(t, 300*time.Millisecond, 0, true)
}

// The same when this process was started with a longer --dedupe-window than CHAT was given
// since (by another process, or natter init): the gateway reads the stream up to where CHAT's
// own window ends. With the process's 15 s it would stop at the message sent before the first
// attempt (1 s old, "within a third of the window"), and the resend would become a second message.
func TestAResendIsFoundWhenCHATsWindowIsShorterThanTheProcesss(t *testing.T) {
	resendAfterTheWindow(t, 300*time.Millisecond, 15*time.Second, true)
}

// resendAfterTheWindow sends a message, resends it after three of CHAT's duplicate windows
// (window), and requires the first ack back as a duplicate and one message delivered. The
// process starts with --dedupe-window processWindow (0: window); CHAT is then given window
// before anything reads it, as another process starting would. lagging: the persister's
// consumer is paused first and another message sent before the first attempt, so the gateway
// must find the attempt in the stream, past an unstored event of the conversation.
func resendAfterTheWindow(t *testing.T, window, processWindow time.Duration, lagging bool) {
	if processWindow == 0 {
		processWindow = window
	}
	s := apptest.Start(t, func(c *app.Config) { c.Streams.DuplicateWindow = processWindow })
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if processWindow != window {
		st, err := js.Stream(ctx, streams.ChatStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.Duplicates = window
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a, b := dial(s, alice, "a", nil), dial(s, bob, "b", nil)
	want := "once,marker"
	if lagging {
		if _, err := js.PauseConsumer(ctx, streams.ChatStream, streams.PersisterConsumer, time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		a.Send(send(conv, "earlier", "earlier"))
		a.NextOf(protocol.TypeAck, wait)
		want = "earlier," + want
	}

	a.Send(send(conv, "late-retry", "once"))
	ack1 := a.NextOf(protocol.TypeAck, wait)
	if ack1.Duplicate || ack1.Seq == 0 {
		t.Fatalf("first ack %+v", ack1)
	}
	time.Sleep(3 * window) // JetStream forgets the id
	retry := send(conv, "late-retry", "once")
	retry.Resend = true
	a.Send(retry)
	if ack := a.NextOf(protocol.TypeAck, wait); !ack.Duplicate || ack.Seq != ack1.Seq || ack.MessageID != ack1.MessageID {
		t.Fatalf("resend ack %+v, want the first ack (seq %d) as a duplicate", ack, ack1.Seq)
	}
	a.Send(send(conv, "marker", "marker"))
	var texts []string
	for {
		f := b.NextOf(protocol.TypeMessage, wait)
		texts = append(texts, f.Text)
		if f.Text == "marker" {
			break
		}
	}
	if got := strings.Join(texts, ","); got != want {
		t.Fatalf("recipient saw %s, want %s", got, want)
	}
}

func TestBadInputGetsCodedErrorAndConnectionStaysUsable(t *testing.T) {
	s := apptest.Start(t)
	alice, bob, eve := s.SignUp("alice"), s.SignUp("bob"), s.SignUp("eve")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)
	e := dial(s, eve, "e", nil)

	cases := []struct {
		name string
		raw  []byte
		code protocol.Code
		ref  string
	}{
		{"malformed json", []byte(`{"type":`), protocol.CodeInvalidJSON, ""},
		{"invalid utf8", []byte("{\"type\":\"send\",\"text\":\"\xc3\x28\"}"), protocol.CodeInvalidUTF8, ""},
		{"unknown type", []byte(`{"type":"launch"}`), protocol.CodeUnknownType, ""},
		{"empty text", []byte(`{"type":"send","client_msg_id":"x1","conversation_id":"` + conv + `","text":""}`), protocol.CodeTextEmpty, "x1"},
		{"100,001 ascii", mustJSON(send(conv, "x2", strings.Repeat("a", protocol.MaxTextRunes+1))), protocol.CodeTextTooLong, "x2"},
		{"oversized frame", []byte(`{"type":"send","text":"` + strings.Repeat("a", protocol.MaxFrameBytes) + `"}`), protocol.CodeFrameTooLarge, ""},
		{"not a member", mustJSON(send("dnosuchconversation", "x3", "hi")), protocol.CodeNotMember, "x3"},
		{"negative up_to", []byte(`{"type":"read","id":"r1","conversation_id":"` + conv + `","up_to":-1}`), protocol.CodeInvalidFrame, "r1"},
		{"up_to over 2^64-1", []byte(`{"type":"delivered","id":"r2","conversation_id":"` + conv + `","up_to":1e400}`), protocol.CodeInvalidFrame, "r2"},
		{"text a number", []byte(`{"type":"send","client_msg_id":"x5","conversation_id":"` + conv + `","text":5}`), protocol.CodeInvalidFrame, "x5"},
	}
	for _, tc := range cases {
		a.SendRaw(tc.raw)
		f := a.NextOf(protocol.TypeError, wait)
		if protocol.Code(f.Code) != tc.code || f.Ref != tc.ref || f.Message == "" || strings.Contains(f.Message, "Go struct") {
			t.Errorf("%s: got %s, want code %s ref %q", tc.name, f.Raw, tc.code, tc.ref)
		}
		a.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "p"})
		if p := a.NextOf(protocol.TypePong, wait); p.Ref != "p" {
			t.Fatalf("%s: connection not usable afterwards: %+v", tc.name, p)
		}
	}
	// A non-member sending into a real conversation learns exactly what a missing one tells.
	e.Send(send(conv, "x4", "let me in"))
	if f := e.NextOf(protocol.TypeError, wait); f.Code != string(protocol.CodeNotMember) || f.Message != "not a member of this conversation, or it does not exist" {
		t.Fatalf("non-member got %+v", f)
	}
	// 100,000 emoji (400,000 bytes) is within the limit.
	a.Send(send(conv, "big", strings.Repeat("😀", protocol.MaxTextRunes)))
	if ack := a.NextOf(protocol.TypeAck, wait); ack.Seq == 0 {
		t.Fatalf("100,000 emoji not acked: %+v", ack)
	}
}

func TestUpgradeNeedsAValidToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-gateway-tests")
	s := apptest.Start(t, func(c *app.Config) { c.JWTSecret = secret })
	for _, q := range []string{"", "?token=garbage"} {
		resp, err := http.Get(strings.Replace(s.WSURL, "ws://", "http://", 1) + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("upgrade with %q: status %d, want 401", q, resp.StatusCode)
		}
	}

	// A token signed with the right secret for an account the store does not have (deleted, or
	// the store wiped since) is refused by a real upgrade, by query and by header alike, and by the
	// API: both go through auth.Authenticator.
	tokens, err := auth.NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const ghostID, ghostSession = "01GHOSTGHOSTGHOSTGHOSTGHOS", "01GHOSTSESSION000000000000"
	if err := s.Run.Store.CreateSession(context.Background(), store.Session{ID: ghostSession, UserID: ghostID,
		RefreshHash: []byte("h"), CreatedAt: time.Now(), LastUsed: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ghost, _, err := tokens.Issue(ghostID, ghostSession)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for name, connect := range map[string]func() (*websocket.Conn, *http.Response, error){
		"query": func() (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, s.WSURL+"?device=ghost&token="+ghost, nil)
		},
		"header": func() (*websocket.Conn, *http.Response, error) {
			return websocket.Dial(ctx, s.WSURL+"?device=ghost", &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + ghost}},
			})
		},
	} {
		c, resp, err := connect()
		if err == nil {
			c.CloseNow()
			t.Fatalf("%s: a token of no account opened a socket", name)
		}
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		if resp == nil {
			t.Fatalf("%s: no HTTP answer: %v", name, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || json.NewDecoder(resp.Body).Decode(&body) != nil || body.Error.Code != "unauthorized" {
			t.Errorf("%s: got %d %+v, want 401 unauthorized", name, resp.StatusCode, body)
		}
	}
	status, raw := apptest.Request(t, "GET", s.APIURL+"/v1/conversations", ghost, nil)
	if status != http.StatusUnauthorized || !strings.Contains(string(raw), `"code":"unauthorized"`) {
		t.Errorf("API with a token of no account: %d %s", status, raw)
	}
	// The same secret's token for a real account still opens a socket.
	dial(s, s.SignUp("alice"), "a", nil).Conn.Close(websocket.StatusNormalClosure, "")
}

func TestSyncFromCursorThenLiveWithoutGapOrDuplicate(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)

	var seqs []uint64
	for i := 0; i < 30; i++ {
		a.Send(send(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i)))
		seqs = append(seqs, a.NextOf(protocol.TypeAck, wait).Seq)
	}
	cursor := seqs[9] // bob's device had the first 10
	b := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "b", &cursor))
	if w := b.Next(wait); w.Type != protocol.TypeWelcome || !w.Syncing {
		t.Fatalf("welcome %+v", w)
	}
	// Live traffic while bob catches up.
	go func() {
		for i := 30; i < 40; i++ {
			a.Send(send(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("text %d", i)))
		}
	}()
	var got []uint64
	synced := false
	// The live sends may all be in the stream before the catch-up reads its head (sends are
	// pipelined): then synced comes after all 30 messages.
	for len(got) < 30 || !synced {
		f := b.Next(wait)
		switch f.Type {
		case protocol.TypeMessage:
			got = append(got, f.Seq)
		case protocol.TypeSynced:
			synced = true
			if f.Cursor < seqs[len(seqs)-1] {
				t.Fatalf("synced at %d, before the last acked %d", f.Cursor, seqs[len(seqs)-1])
			}
		}
	}
	if !synced {
		t.Fatal("no synced frame")
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order or duplicate: %v", got)
		}
	}
	if got[0] != seqs[10] || got[19] != seqs[29] {
		t.Fatalf("catch-up %v does not start right after the cursor (%v)", got, seqs)
	}
}

func TestSlowClientIsClosedAndOthersUnaffected(t *testing.T) {
	// The writer blocked on the full socket must outlast the test's sending, so the client, once it
	// reads, finds the close frame behind the data (a real slow client reads eventually too). So
	// must the heartbeat, which the client that does not read does not answer: on a machine busy
	// enough that the sending takes minutes, it would close the socket first.
	s := apptest.Start(t, func(c *app.Config) {
		c.Gateway.SendQueue, c.Gateway.WriteTimeout = 16, 10*time.Minute
		c.Gateway.HeartbeatInterval, c.Gateway.HeartbeatTimeout = 10*time.Minute, 10*time.Minute
	})
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)
	// bob's device never reads.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Its socket's receive buffer is fixed small (loopback's autotuning would otherwise take up to
	// 32 MB here before the server's writer blocks): then what the server's send buffer holds (at
	// most 4 MB, tcp_wmem) and the 16 queued frames are all it takes.
	small := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) }); err != nil {
			return err
		}
		return serr
	}}
	slow, _, err := websocket.Dial(ctx, apptest.WSURLFor(s.WSURL, bob.Token, "slow", nil), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: small.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	fast := dial(s, bob, "fast", nil)
	// 70 of them, 7 MB: over the 4 MB send buffer, the 128 KB the kernel makes of 64 KB, and 16
	// frames of 100 KB.
	big := strings.Repeat("x", 100_000)
	for i := 0; i < 70; i++ {
		a.Send(send(conv, fmt.Sprintf("b%d", i), big))
		a.NextOf(protocol.TypeAck, wait)
		fast.NextOf(protocol.TypeMessage, wait)
	}
	slow.SetReadLimit(protocol.HardFrameBytes)
	readCtx, cancelRead := context.WithTimeout(context.Background(), wait)
	defer cancelRead()
	for {
		_, _, err := slow.Read(readCtx)
		if err != nil {
			if got := websocket.CloseStatus(err); got != websocket.StatusCode(protocol.CloseSlowConsumer) {
				t.Fatalf("slow client closed with %d (%v), want %d", got, err, protocol.CloseSlowConsumer)
			}
			return
		}
	}
}

func TestDeadClientIsDroppedByHeartbeat(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) {
		c.Gateway.HeartbeatInterval = 50 * time.Millisecond
		c.Gateway.HeartbeatTimeout = 100 * time.Millisecond
	})
	alice := s.SignUp("alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// This client never reads, so it never answers a ping.
	c, _, err := websocket.Dial(ctx, apptest.WSURLFor(s.WSURL, alice.Token, "dead", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	time.Sleep(500 * time.Millisecond)
	// Now read what is left: the server hung up without a close frame.
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("connection still open long after the heartbeat timeout")
			}
			return
		}
	}
}

func TestSecondConnectionOfADeviceReplacesTheFirst(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	first := dial(s, alice, "phone", nil)
	dial(s, alice, "phone", nil)
	if got := first.CloseStatus(wait); got != websocket.StatusCode(protocol.CloseReplaced) {
		t.Fatalf("first connection closed with %d, want %d", got, protocol.CloseReplaced)
	}
}

func TestShutdownClosesWithReconnectCode(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	ws := dial(s, alice, "a", nil)
	go s.Stop()
	got := ws.CloseStatus(wait)
	if got != websocket.StatusCode(protocol.CloseShutdown) || !protocol.CloseCode(got).Reconnect() {
		t.Fatalf("closed with %d, want %d", got, protocol.CloseShutdown)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// A device syncing from cursor 0 gets a conversation's whole history from the store — more than
// one store page — in order, then live events.
func TestSyncFromZeroReadsTheWholeStoredHistory(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.Gateway.FramesPerSecond, c.Gateway.Burst = 1e6, 1e6 })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)
	const n = 450 // over two store pages of 200
	var last uint64
	for i := 0; i < n; i++ { // pipelined: one socket's sends keep their order
		a.Send(send(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("%d", i)))
	}
	for i := 0; i < n; i++ {
		last = max(last, a.NextOf(protocol.TypeAck, wait).Seq)
	}
	s.WaitPersisted(last)
	zero := uint64(0)
	b := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "b", &zero))
	for i := 0; i < n; i++ {
		if f := b.NextOf(protocol.TypeMessage, wait); f.Text != fmt.Sprintf("%d", i) {
			t.Fatalf("event %d is %q", i, f.Text)
		}
	}
	if f := b.NextOf(protocol.TypeSynced, wait); f.Cursor != last {
		t.Fatalf("synced at %d, want %d", f.Cursor, last)
	}
}

// A device away longer than the stream keeps events gets the old ones from the store: no cliff,
// no "start over".
func TestSyncAfterTheStreamForgotReadsTheStore(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a := dial(s, alice, "a", nil)
	var seqs []uint64
	for i := 0; i < 20; i++ {
		a.Send(send(conv, fmt.Sprintf("m%d", i), fmt.Sprintf("%d", i)))
		seqs = append(seqs, a.NextOf(protocol.TypeAck, wait).Seq)
	}
	s.WaitPersisted(seqs[len(seqs)-1])
	// The stream drops everything before the last five events (as retention would).
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	chat := chatStream(t, s)
	if err := chat.Purge(ctx, jetstream.WithPurgeSequence(seqs[15])); err != nil {
		t.Fatal(err)
	}
	cursor := seqs[2] // bob's device last saw the third message
	b := apptest.Dial(t, apptest.WSURLFor(s.WSURL, bob.Token, "b", &cursor))
	for _, want := range seqs[3:] {
		if f := b.NextOf(protocol.TypeMessage, wait); f.Seq != want {
			t.Fatalf("got seq %d, want %d", f.Seq, want)
		}
	}
	if f := b.NextOf(protocol.TypeSynced, wait); f.Cursor != seqs[len(seqs)-1] {
		t.Fatalf("synced at %d", f.Cursor)
	}
}

// fanout's word that a gateway's next events do not follow on from its last ones: every socket
// closes with the resync code (reconnect and catch up from the cursor) before anything later
// could reach it. The deliveries are JSON, as fanouts before the binary form wrote them (the
// other delivery tests publish the binary form, streams.PublishDelivery).
func TestResyncDeliveryClosesEverySocketForSync(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	a, b := dial(s, alice, "a", nil), dial(s, bob, "b", nil)
	if err := s.Run.NC.Publish(streams.DeliverSubject(s.Run.Gateway.ID()), mustJSON(streams.Delivery{Users: []string{}, Resync: true})); err != nil {
		t.Fatal(err)
	}
	// An event routed right after the resync must not reach the closing sockets.
	if err := s.Run.NC.Publish(streams.DeliverSubject(s.Run.Gateway.ID()), mustJSON(eventDelivery(99, []string{alice.ID, bob.ID},
		streams.ChatEvent{V: streams.Version, Kind: streams.KindMsg, ConversationID: conv, MessageID: "m", SenderID: bob.ID, Text: "late"}))); err != nil {
		t.Fatal(err)
	}
	expectResync(t, map[string]*apptest.WS{"a": a, "b": b}) // and the event at 99 reaches neither
}
