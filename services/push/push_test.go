package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/services/push/pushtest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

const (
	project = "natter-test"
	wait    = 10 * time.Second
)

type env struct {
	ctx      context.Context
	nc       *nats.Conn
	js       jetstream.JetStream
	store    store.Store
	fcm      *pushtest.FCM
	ledger   *Ledger
	settings jetstream.KeyValue
	reg      *prometheus.Registry
	push     *Push // the last one started
}

func newEnv(t *testing.T) *env {
	t.Helper()
	te := natsxtest.Start(t)
	ledger, err := OpenLedger(te.Ctx, te.JS)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: te.Ctx, nc: te.NC, js: te.JS, store: pebbletest.Open(t), fcm: pushtest.New(t, project), ledger: ledger,
		settings: te.KeyValue(t, streams.PushSettingsBucket), reg: prometheus.NewRegistry()}
	// Alice writes to Bob in a direct conversation; Bob has a phone with a push token.
	e.user(t, "alice", "Alice")
	e.user(t, "bob", "Bob")
	e.conversation(t, "d1", store.Direct, "", "alice", "bob")
	e.token(t, "bob", "phone", "tok-bob-phone")
	return e
}

// config is the test configuration against the fake FCM: fast retries, three attempts.
func (e *env) config() Config {
	cfg := DefaultConfig()
	cfg.Workers = 2
	cfg.MaxAttempts = 3
	cfg.MinRetry = 50 * time.Millisecond
	cfg.MaxRetry = 3 * time.Second
	cfg.SendTimeout = 5 * time.Second
	cfg.Endpoint = e.fcm.Endpoint()
	cfg.ProjectID = project
	cfg.TokenSource = e.fcm.TokenSource()
	cfg.Transport = e.fcm.Transport()
	return cfg
}

func (e *env) start(t *testing.T, cfg Config, log *zap.Logger) *Push {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	p, err := New(cfg, Deps{Log: log, JS: e.js, Store: e.store, Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.push = p
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop push: %v", err)
		}
	})
	return p
}

func (e *env) user(t *testing.T, id, name string) {
	t.Helper()
	if err := e.store.CreateUser(e.ctx, store.User{ID: id, Handle: id, DisplayName: name, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) conversation(t *testing.T, id string, kind store.ConversationKind, name string, members ...string) {
	t.Helper()
	if err := e.store.PutConversation(e.ctx, store.Conversation{ID: id, Kind: kind, Name: name, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if err := e.store.PutMember(e.ctx, store.Member{ConversationID: id, UserID: m, Role: "member"}); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) token(t *testing.T, user, device, token string) {
	t.Helper()
	if err := e.store.PutPushToken(e.ctx, store.PushToken{UserID: user, DeviceID: device, Platform: "android", Token: token, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) message(t *testing.T, conv string, seq uint64, sender, text string) {
	t.Helper()
	if _, _, err := e.store.InsertMessage(e.ctx, store.Message{ConversationID: conv, Seq: seq, ID: fmt.Sprintf("m%d", seq),
		Kind: streams.KindMsg, SenderID: sender, Text: text, SentAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// request publishes a push request (as fanout would) and returns it.
func (e *env) request(t *testing.T, user, conv string, seq uint64, sender, text string) streams.PushRequest {
	t.Helper()
	req := streams.NewPushRequest(user, seq, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv,
		MessageID: fmt.Sprintf("m%d", seq), SenderID: sender, Text: text, SentAt: time.Now().UnixMilli()})
	b, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(e.ctx, streams.PushSubject(user), b, jetstream.WithMsgID(streams.PushMsgID(req.MessageID, user))); err != nil {
		t.Fatal(err)
	}
	return req
}

// final waits for the final ledger entry of (user, message, device).
func (e *env) final(t *testing.T, user, message, device string) streams.PushLedgerEntry {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		le, ok, err := e.ledger.Latest(e.ctx, user, message, device)
		if err != nil {
			t.Fatal(err)
		}
		if ok && le.Final() {
			return le
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final ledger entry for %s/%s/%s (latest %+v)", user, message, device, le)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drained waits until the PUSH work queue is empty: every request acked or terminated.
func (e *env) drained(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		s, err := e.js.Stream(e.ctx, streams.PushStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PUSH still holds %d requests", info.State.Msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) tokens(t *testing.T, user string) map[string]string {
	t.Helper()
	ts, err := e.store.PushTokens(e.ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tk := range ts {
		out[tk.DeviceID] = tk.Token
	}
	return out
}

func (e *env) counter(outcome, reason string) float64 {
	return testutil.ToFloat64(e.push.met.notifications.WithLabelValues(outcome, reason))
}

func TestSendsTheExactFCMRequest(t *testing.T) {
	e := newEnv(t)
	// Bob has unread messages: two in d1 above his read mark (the pushed one included), two in a
	// group.
	e.message(t, "d1", 1, "alice", "old, read")
	e.message(t, "d1", 2, "bob", "his own")
	e.message(t, "d1", 3, "alice", "unread")
	e.message(t, "d1", 4, "alice", `hello <Bob> & "friends" 👋`)
	if _, err := e.store.AdvanceWatermark(e.ctx, store.Watermark{ConversationID: "d1", UserID: "bob", Read: 1}); err != nil {
		t.Fatal(err)
	}
	e.conversation(t, "g1", store.Group, "Trip", "alice", "bob")
	e.message(t, "g1", 10, "alice", "a")
	e.message(t, "g1", 11, "alice", "b")
	e.start(t, e.config(), nil)

	req := e.request(t, "bob", "d1", 4, "alice", `hello <Bob> & "friends" 👋`)
	r := e.fcm.Next(t, wait)
	if r.Method != http.MethodPost || r.Path != "/v1/projects/"+project+"/messages:send" {
		t.Fatalf("request %s %s", r.Method, r.Path)
	}
	if r.Authorization != "Bearer "+pushtest.AccessToken {
		t.Fatalf("authorization %q", r.Authorization)
	}
	if !strings.HasPrefix(r.ContentType, "application/json") {
		t.Fatalf("content type %q", r.ContentType)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"message": map[string]any{
			"token":        "tok-bob-phone",
			"notification": map[string]any{"title": "Alice", "body": `hello <Bob> & "friends" 👋`},
			"data": map[string]any{
				"type": "message", "conversation_id": "d1", "message_id": "m4", "sender_id": "alice", "seq": "4", "badge": "4",
			},
			"android": map[string]any{
				"collapse_key": "d1", "priority": "high",
				"notification": map[string]any{"tag": "d1", "notification_count": float64(4)},
			},
			"apns": map[string]any{
				"headers": map[string]any{"apns-collapse-id": "d1", "apns-push-type": "alert", "apns-priority": "10"},
				"payload": map[string]any{"aps": map[string]any{"badge": float64(4), "thread-id": "d1", "sound": "default"}},
			},
		},
	}
	if got, wantJSON := mustJSON(t, body), mustJSON(t, want); got != wantJSON {
		t.Fatalf("body\n got %s\nwant %s", got, wantJSON)
	}
	le := e.final(t, "bob", req.MessageID, "phone")
	if le.Outcome != streams.PushSent || le.Provider != "fcm" || le.ConversationID != "d1" || le.Attempt != 1 {
		t.Fatalf("ledger %+v", le)
	}
	e.drained(t)
	e.fcm.None(t, 200*time.Millisecond)
	if n := e.counter(streams.PushSent, "fcm"); n != 1 {
		t.Fatalf("sent counter %v", n)
	}

	// A group message: the title names the group; the collapse key is the group.
	e.request(t, "bob", "g1", 12, "alice", "to the group")
	r = e.fcm.Next(t, wait)
	if r.Str("notification", "title") != "Alice · Trip" || r.Str("android", "collapse_key") != "g1" || r.Str("apns", "headers", "apns-collapse-id") != "g1" {
		t.Fatalf("group push %s", r.Body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAHundredThousandCharacterMessageStillMakesAValidPush(t *testing.T) {
	e := newEnv(t)
	e.start(t, e.config(), nil)
	text := strings.Repeat("😀", 100_000)
	req := e.request(t, "bob", "d1", 1, "alice", text)
	if !req.Truncated || utf8.RuneCountInString(req.Text) != streams.PushPreviewRunes {
		t.Fatalf("fanout's request: truncated=%v, %d runes", req.Truncated, utf8.RuneCountInString(req.Text))
	}
	r := e.fcm.Next(t, wait)
	if len(r.Body) > MaxPayload {
		t.Fatalf("request body %d bytes > %d", len(r.Body), MaxPayload)
	}
	body := r.Str("notification", "body")
	if !utf8.ValidString(body) || !strings.HasSuffix(body, "…") || !strings.HasPrefix(text, strings.TrimSuffix(body, "…")) {
		t.Fatalf("preview is not a prefix with an ellipsis: %q…", body[:40])
	}
	if n := utf8.RuneCountInString(body); n < 500 {
		t.Fatalf("preview only %d runes: it should fill the payload", n)
	}
	if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushSent {
		t.Fatalf("ledger %+v", le)
	}
}

func TestUnregisteredAndInvalidTokensAreRemoved(t *testing.T) {
	e := newEnv(t)
	e.token(t, "bob", "tablet", "tok-bob-tablet")
	e.token(t, "bob", "laptop", "tok-bob-laptop")
	e.fcm.Script(func(_ int, r pushtest.Request) pushtest.Reply {
		switch r.Str("token") {
		case "tok-bob-phone":
			return pushtest.Error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
		case "tok-bob-tablet":
			return pushtest.Error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
		}
		return pushtest.Reply{}
	})
	e.start(t, e.config(), nil)
	req := e.request(t, "bob", "d1", 1, "alice", "hi")
	if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushFailed || le.Reason != streams.PushReasonUnregistered ||
		!strings.Contains(le.Detail, "404") || !strings.Contains(le.Detail, "UNREGISTERED") {
		t.Fatalf("phone %+v", le)
	}
	if le := e.final(t, "bob", req.MessageID, "tablet"); le.Outcome != streams.PushFailed || le.Reason != streams.PushReasonInvalidToken {
		t.Fatalf("tablet %+v", le)
	}
	if le := e.final(t, "bob", req.MessageID, "laptop"); le.Outcome != streams.PushSent {
		t.Fatalf("laptop %+v", le)
	}
	e.drained(t)
	if got := e.tokens(t, "bob"); len(got) != 1 || got["laptop"] != "tok-bob-laptop" {
		t.Fatalf("tokens left %v, want only the laptop's", got)
	}
	if n := len(e.fcm.Requests()); n != 3 {
		t.Fatalf("%d requests, want 3 (no retries of permanent failures)", n)
	}
	// A device that registered a new token meanwhile keeps it: only the token FCM refused goes.
	e.token(t, "bob", "phone", "tok-bob-phone-2")
	e.fcm.Script(func(int, pushtest.Request) pushtest.Reply {
		// The device registers a new token while the send is in flight.
		if err := e.store.PutPushToken(context.Background(), store.PushToken{UserID: "bob", DeviceID: "phone", Platform: "android",
			Token: "tok-bob-phone-3", UpdatedAt: time.Now()}); err != nil {
			t.Error(err)
		}
		return pushtest.Error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
	})
	if err := e.store.DeletePushToken(e.ctx, "bob", "laptop"); err != nil {
		t.Fatal(err)
	}
	req = e.request(t, "bob", "d1", 2, "alice", "again")
	e.final(t, "bob", req.MessageID, "phone")
	if got := e.tokens(t, "bob"); got["phone"] != "tok-bob-phone-3" {
		t.Fatalf("tokens %v: the newer token must stay", got)
	}
}

func TestUnavailableThenSuccessIsRetriedByRedelivery(t *testing.T) {
	e := newEnv(t)
	e.fcm.Script(func(n int, _ pushtest.Request) pushtest.Reply {
		if n == 0 {
			return pushtest.Error(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")
		}
		return pushtest.Reply{}
	})
	e.start(t, e.config(), nil)
	req := e.request(t, "bob", "d1", 1, "alice", "hi")
	first, second := e.fcm.Next(t, wait), e.fcm.Next(t, wait)
	if first.Str("token") != "tok-bob-phone" || string(first.Body) != string(second.Body) {
		t.Fatalf("retry differs:\n%s\n%s", first.Body, second.Body)
	}
	// The SDK's own retry is cut off: the second request is push's redelivery, after MinRetry.
	if gap := second.At.Sub(first.At); gap < 50*time.Millisecond {
		t.Fatalf("second request %s after the first: the SDK retried in place", gap)
	}
	le := e.final(t, "bob", req.MessageID, "phone")
	if le.Outcome != streams.PushSent || le.Attempt != 2 {
		t.Fatalf("ledger %+v", le)
	}
	entries, err := e.ledger.Entries(e.ctx, "bob", req.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Outcome != streams.PushRetrying || !strings.Contains(entries[0].Detail, "503") {
		t.Fatalf("entries %+v", entries)
	}
	e.drained(t)
	e.fcm.None(t, 200*time.Millisecond)
}

func TestTooManyRequestsHonorsRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.fcm.Script(func(n int, _ pushtest.Request) pushtest.Reply {
		if n == 0 {
			r := pushtest.Error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.")
			r.Header.Set("Retry-After", "1")
			return r
		}
		return pushtest.Reply{}
	})
	e.start(t, e.config(), nil)
	req := e.request(t, "bob", "d1", 1, "alice", "hi")
	first, second := e.fcm.Next(t, wait), e.fcm.Next(t, wait)
	if gap := second.At.Sub(first.At); gap < 900*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 1", gap)
	}
	if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushSent || le.Attempt != 2 {
		t.Fatalf("ledger %+v", le)
	}
	entries, err := e.ledger.Entries(e.ctx, "bob", req.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(entries[0].Detail, "429 QUOTA_EXCEEDED (retry after 1s)") {
		t.Fatalf("first entry %+v", entries[0])
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	e := newEnv(t)
	e.fcm.Script(func(n int, _ pushtest.Request) pushtest.Reply { return pushtest.Reply{Drop: n == 0} })
	e.start(t, e.config(), nil)
	req := e.request(t, "bob", "d1", 1, "alice", "hi")
	e.fcm.Next(t, wait)
	e.fcm.Next(t, wait)
	if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushSent || le.Attempt != 2 {
		t.Fatalf("ledger %+v", le)
	}
}

func TestFailuresGoToTheDeadLetterStreamAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	e.token(t, "bob", "laptop", "tok-bob-laptop")
	e.fcm.Script(func(_ int, r pushtest.Request) pushtest.Reply {
		if r.Str("token") == "tok-bob-laptop" {
			return pushtest.Reply{}
		}
		return pushtest.Error(500, "INTERNAL", "INTERNAL", "Internal error encountered.")
	})
	e.start(t, e.config(), nil)
	req := e.request(t, "bob", "d1", 1, "alice", "hi")
	le := e.final(t, "bob", req.MessageID, "phone")
	if le.Outcome != streams.PushFailed || le.Reason != streams.PushReasonDeadLetter || le.Attempt != 3 || !strings.Contains(le.Detail, "500") {
		t.Fatalf("ledger %+v", le)
	}
	e.drained(t)
	var phone, laptop int
	for _, r := range e.fcm.Requests() {
		switch r.Str("token") {
		case "tok-bob-phone":
			phone++
		case "tok-bob-laptop":
			laptop++
		}
	}
	if phone != 3 || laptop != 1 {
		t.Fatalf("phone %d requests (want 3 attempts), laptop %d (want 1: sent once, never again)", phone, laptop)
	}
	dead, err := e.js.Stream(e.ctx, streams.PushDeadStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dead.GetLastMsgForSubject(e.ctx, streams.PushDeadSubject("bob"))
	if err != nil {
		t.Fatal(err)
	}
	var dl streams.PushDeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Request != req || dl.Attempts != 3 || len(dl.Devices) != 1 || dl.Devices[0] != "phone" || !strings.Contains(dl.Reason, "500 INTERNAL") {
		t.Fatalf("dead letter %+v", dl)
	}
	if n := e.counter(streams.PushFailed, streams.PushReasonDeadLetter); n != 1 {
		t.Fatalf("dead letter counter %v", n)
	}
}

func TestMutedConversationSendsNothing(t *testing.T) {
	e := newEnv(t)
	b, _ := json.Marshal(streams.PushSetting{Muted: true, UpdatedAt: time.Now().UnixMilli()})
	if _, err := e.settings.Put(e.ctx, streams.PushSettingKey("bob", "d1"), b); err != nil {
		t.Fatal(err)
	}
	e.start(t, e.config(), nil)
	req := e.request(t, "bob", "d1", 1, "alice", "hi")
	if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushSkipped || le.Reason != streams.PushReasonMuted {
		t.Fatalf("ledger %+v", le)
	}
	e.drained(t)
	e.fcm.None(t, 200*time.Millisecond)
	// Unmuted (the API deletes the key), pushes flow again.
	if err := e.settings.Delete(e.ctx, streams.PushSettingKey("bob", "d1")); err != nil {
		t.Fatal(err)
	}
	e.request(t, "bob", "d1", 2, "alice", "hi again")
	e.fcm.Next(t, wait)
}

func TestMessageReadElsewhereBeforeThePushIsDropped(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.AdvanceWatermark(e.ctx, store.Watermark{ConversationID: "d1", UserID: "bob", Read: 5}); err != nil {
		t.Fatal(err)
	}
	// The first push fails and Bob reads the message on his laptop before the retry.
	e.fcm.Script(func(n int, _ pushtest.Request) pushtest.Reply {
		if n == 0 {
			if _, err := e.store.AdvanceWatermark(context.Background(), store.Watermark{ConversationID: "d1", UserID: "bob", Read: 6}); err != nil {
				t.Error(err)
			}
			return pushtest.Error(503, "UNAVAILABLE", "UNAVAILABLE", "try later")
		}
		return pushtest.Reply{}
	})
	e.start(t, e.config(), nil)
	read := e.request(t, "bob", "d1", 5, "alice", "already read")
	if le := e.final(t, "bob", read.MessageID, "phone"); le.Outcome != streams.PushSkipped || le.Reason != streams.PushReasonRead {
		t.Fatalf("ledger %+v", le)
	}
	later := e.request(t, "bob", "d1", 6, "alice", "read during the retry")
	e.fcm.Next(t, wait)
	if le := e.final(t, "bob", later.MessageID, "phone"); le.Outcome != streams.PushSkipped || le.Reason != streams.PushReasonRead || le.Attempt != 2 {
		t.Fatalf("ledger %+v", le)
	}
	e.drained(t)
	if n := len(e.fcm.Requests()); n != 1 {
		t.Fatalf("%d requests, want only the failed one", n)
	}
}

func TestNoTokenAndRedeliveryAreRecordedNotResent(t *testing.T) {
	e := newEnv(t)
	e.user(t, "carol", "Carol")
	e.start(t, e.config(), nil)
	req := e.request(t, "carol", "d1", 1, "alice", "hi")
	if le := e.final(t, "carol", req.MessageID, ""); le.Outcome != streams.PushSkipped || le.Reason != streams.PushReasonNoToken {
		t.Fatalf("ledger %+v", le)
	}
	// A request sent again (a fanout replay after the dedupe window) does not push twice.
	req = e.request(t, "bob", "d1", 2, "alice", "once")
	e.fcm.Next(t, wait)
	e.final(t, "bob", req.MessageID, "phone")
	b, _ := req.Encode()
	if _, err := e.js.Publish(e.ctx, streams.PushSubject("bob"), b); err != nil {
		t.Fatal(err)
	}
	e.drained(t)
	e.fcm.None(t, 300*time.Millisecond)
}

func TestLogProviderSaysSoAndLogsWhatItWouldSend(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := DefaultConfig()
	cfg.Workers = 1
	p := e.start(t, cfg, zap.New(core))
	if p.Provider() != "log" {
		t.Fatalf("provider %q", p.Provider())
	}
	if logs.FilterMessageSnippet("WITHOUT FCM credentials").Len() != 1 {
		t.Fatalf("start did not say it only logs: %v", logs.All())
	}
	req := e.request(t, "bob", "d1", 1, "alice", "hello from the log")
	le := e.final(t, "bob", req.MessageID, "phone")
	if le.Outcome != streams.PushSent || le.Provider != "log" {
		t.Fatalf("ledger %+v", le)
	}
	sent := logs.FilterMessageSnippet("push not sent").All()
	if len(sent) != 1 || sent[0].ContextMap()["title"] != "Alice" || sent[0].ContextMap()["body"] != "hello from the log" ||
		sent[0].ContextMap()["collapse_key"] != "d1" || strings.Contains(fmt.Sprint(sent[0].ContextMap()), "tok-bob-phone") {
		t.Fatalf("log %v", sent)
	}
	if !strings.Contains(Explain("bob", req.MessageID, []streams.PushLedgerEntry{le}), "only logged") {
		t.Fatal("explain does not say the push was only logged")
	}
}

func TestConfig(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil || ok.Configured() {
		t.Fatalf("default: %v, configured %v", err, ok.Configured())
	}
	for name, mod := range map[string]func(*Config){
		"workers":        func(c *Config) { c.Workers = 0 },
		"attempts":       func(c *Config) { c.MaxAttempts = 0 },
		"retry":          func(c *Config) { c.MinRetry, c.MaxRetry = time.Second, time.Millisecond },
		"timeout":        func(c *Config) { c.SendTimeout = 0 },
		"project alone":  func(c *Config) { c.ProjectID = "p" },
		"source alone":   func(c *Config) { c.TokenSource = pushtest.New(t, "x").TokenSource() },
		"no min retry":   func(c *Config) { c.MinRetry = 0 },
		"many workers":   func(c *Config) { c.Workers = 1000 },
		"zero max retry": func(c *Config) { c.MaxRetry = 0 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	// A credentials file without a project: the project comes from the file.
	dir := t.TempDir()
	file := dir + "/sa.json"
	if err := os.WriteFile(file, pushtest.New(t, "from-file").ServiceAccount(t), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.CredentialsFile = file
	p, err := New(c, Deps{Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Provider() != "fcm" || p.cfg.ProjectID != "from-file" {
		t.Fatalf("provider %s project %q", p.Provider(), p.cfg.ProjectID)
	}
	c.CredentialsFile = dir + "/missing.json"
	if _, err := New(c, Deps{Log: zap.NewNop()}); err == nil {
		t.Fatal("a missing credentials file was accepted")
	}
}

func TestMaxAttemptsMustStayBelowMaxDeliver(t *testing.T) {
	e := newEnv(t)
	o := streams.DefaultOptions()
	o.MaxDeliver = 3
	if err := natsx.Apply(e.ctx, e.js, streams.Define(o)); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.MaxAttempts = 3
	p, err := New(cfg, Deps{Log: zap.NewNop(), JS: e.js, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(e.ctx); err == nil {
		_ = p.Stop(e.ctx)
		t.Fatal("start accepted max attempts >= the consumer's max deliver")
	}
}

func TestCredentialsFile(t *testing.T) {
	e := newEnv(t)
	file := t.TempDir() + "/service-account.json"
	if err := os.WriteFile(file, e.fcm.ServiceAccount(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.TokenSource, cfg.ProjectID, cfg.CredentialsFile = nil, "", file
	p := e.start(t, cfg, nil)
	if p.Provider() != "fcm" || p.cfg.ProjectID != project {
		t.Fatalf("provider %s project %s", p.Provider(), p.cfg.ProjectID)
	}
	// The client outlives the context it was built with: tokens are fetched at the first send.
	for seq := uint64(1); seq <= 2; seq++ {
		req := e.request(t, "bob", "d1", seq, "alice", "hi")
		r := e.fcm.Next(t, wait)
		if r.Authorization != "Bearer "+pushtest.AccessToken || r.Path != e.fcm.SendPath() {
			t.Fatalf("request %s %q", r.Path, r.Authorization)
		}
		if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushSent {
			t.Fatalf("ledger %+v", le)
		}
	}
	if n := e.fcm.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests, want 1 (the token is reused)", n)
	}
}

// TestDeletedMessageIsNotPushed: a message deleted for everyone, or by the user for themselves,
// before its push goes (also between two attempts) is not pushed: the ledger says "deleted",
// and the request, with its preview of the text, leaves the PUSH stream.
func TestDeletedMessageIsNotPushed(t *testing.T) {
	e := newEnv(t)
	rv := e.store.(store.Reviser)
	for seq := uint64(1); seq <= 3; seq++ {
		e.message(t, "d1", seq, "alice", fmt.Sprint("message ", seq))
	}
	if _, err := rv.ReviseMessage(e.ctx, "d1", 1, store.Revision{Kind: "delete", Seq: 10, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := rv.ReviseMessage(e.ctx, "d1", 2, store.Revision{Kind: "hide", Seq: 11, UserID: "bob", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Message 3's first push fails; it is deleted before the retry.
	e.fcm.Script(func(n int, _ pushtest.Request) pushtest.Reply {
		if n == 0 {
			if _, err := rv.ReviseMessage(context.Background(), "d1", 3, store.Revision{Kind: "delete", Seq: 12, At: time.Now()}); err != nil {
				t.Error(err)
			}
			return pushtest.Error(503, "UNAVAILABLE", "UNAVAILABLE", "try later")
		}
		return pushtest.Reply{}
	})
	e.start(t, e.config(), nil)
	for seq := uint64(1); seq <= 3; seq++ {
		req := e.request(t, "bob", "d1", seq, "alice", fmt.Sprint("message ", seq))
		if le := e.final(t, "bob", req.MessageID, "phone"); le.Outcome != streams.PushSkipped || le.Reason != streams.PushReasonDeleted {
			t.Fatalf("message %d: ledger %+v, want skipped: deleted", seq, le)
		}
	}
	e.drained(t)
	if n := len(e.fcm.Requests()); n != 1 {
		t.Fatalf("%d requests, want only the failed one", n)
	}
}
