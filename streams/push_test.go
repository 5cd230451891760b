package streams

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

func TestGoldenPushRequest(t *testing.T) {
	raw := golden(t, "push_request.json")
	want := PushRequest{V: 1, UserID: "u_bob", ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E", MessageID: "01J9ZK4A0B2C4D6E8F0G2H4J6K",
		Seq: 42, SenderID: "u_alice", Text: "héllo 👋", Truncated: true, SentAt: 1735689600123}
	roundTrip(t, raw, want)
	got, err := DecodePushRequest(raw)
	if err != nil || got != want {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if out, err := want.Encode(); err != nil || string(out) != string(raw) {
		t.Fatalf("encode: %s %v", out, err)
	}
	for _, bad := range []string{
		`{"v":2,"user_id":"u","conversation_id":"c","message_id":"m","seq":1}`,
		`{"v":1,"user_id":"u.x","conversation_id":"c","message_id":"m","seq":1}`,
		`{"v":1,"user_id":"u","conversation_id":"c","message_id":"m"}`,
		`{"v":1,"conversation_id":"c","message_id":"m","seq":1}`,
		`not json`,
	} {
		if _, err := DecodePushRequest([]byte(bad)); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
	if _, err := DecodePushRequest([]byte(`{"v":2}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("v2: %v", err)
	}
}

func TestGoldenPushDeadLedgerSetting(t *testing.T) {
	roundTrip(t, golden(t, "push_dead.json"), PushDeadLetter{V: 1,
		Request: PushRequest{V: 1, UserID: "u_bob", ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E", MessageID: "01J9ZK4A0B2C4D6E8F0G2H4J6K",
			Seq: 42, SenderID: "u_alice", Text: "hi", SentAt: 1735689600123},
		Reason: "fcm: 503 UNAVAILABLE", Attempts: 8, Devices: []string{"d_phone"}, At: 1735689700000})
	roundTrip(t, golden(t, "push_ledger_entry.json"), PushLedgerEntry{UserID: "u_bob", MessageID: "01J9ZK4A0B2C4D6E8F0G2H4J6K",
		ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E", DeviceID: "d_phone", Outcome: PushFailed, Reason: PushReasonUnregistered,
		Detail: "fcm: 404 UNREGISTERED", Attempt: 1, At: 1735689600500})
	roundTrip(t, golden(t, "push_setting.json"), PushSetting{Muted: true, UpdatedAt: 1735689600000})
}

func TestNewPushRequestCutsTheText(t *testing.T) {
	ev := ChatEvent{Kind: KindMsg, ConversationID: "c", MessageID: "m", SenderID: "a", SentAt: 7}
	ev.Text = strings.Repeat("😀", 100_000)
	r := NewPushRequest("b", 9, ev)
	if utf8.RuneCountInString(r.Text) != PushPreviewRunes || !r.Truncated || !utf8.ValidString(r.Text) {
		t.Fatalf("%d runes, truncated %v", utf8.RuneCountInString(r.Text), r.Truncated)
	}
	if r.UserID != "b" || r.Seq != 9 || r.ConversationID != "c" || r.MessageID != "m" || r.SenderID != "a" || r.SentAt != 7 {
		t.Fatalf("%+v", r)
	}
	ev.Text = strings.Repeat("é", PushPreviewRunes)
	if r := NewPushRequest("b", 9, ev); r.Truncated || r.Text != ev.Text {
		t.Fatal("a text of exactly the limit was cut")
	}
	for _, c := range []struct {
		s    string
		n    int
		want string
		cut  bool
	}{{"", 3, "", false}, {"abc", 3, "abc", false}, {"abcd", 3, "abc", true}, {"äöüß", 2, "äö", true}, {"äö", 5, "äö", false}} {
		if got, cut := CutRunes(c.s, c.n); got != c.want || cut != c.cut {
			t.Errorf("CutRunes(%q, %d) = %q %v", c.s, c.n, got, cut)
		}
	}
}

func TestPushKeysAndDefinitions(t *testing.T) {
	if PushLedgerKey("u", "m", "d") != "u.m.d" || PushLedgerKey("u", "m", "") != "u.m" || PushSettingKey("u", "c") != "u.c" {
		t.Fatal("keys")
	}
	if PushMsgID("m", "u") != "m:u" || PushDeadSubject("u") != "push_dead.u" {
		t.Fatal("ids")
	}
	o := DefaultOptions()
	o.Replicas = 3
	d := Define(o)
	dead := streamByName(t, d, PushDeadStream)
	if dead.Retention != jetstream.LimitsPolicy || dead.MaxAge != PushDeadMaxAge || dead.Replicas != 3 || dead.Subjects[0] != "push_dead.>" {
		t.Fatalf("PUSH_DEAD %+v", dead)
	}
	buckets := map[string]jetstream.KeyValueConfig{}
	for _, b := range d.Buckets {
		buckets[b.Bucket] = b
	}
	if b := buckets[PushLedgerBucket]; b.TTL != PushLedgerTTL || b.History != PushLedgerHistory || b.Replicas != 3 {
		t.Fatalf("ledger bucket %+v", b)
	}
	if b := buckets[PushSettingsBucket]; b.TTL != 0 || b.History != 1 || b.Replicas != 3 {
		t.Fatalf("settings bucket %+v", b)
	}
	ccs := d.Consumers[PushStream]
	if len(ccs) != 1 || ccs[0].Durable != PushConsumer || ccs[0].FilterSubject != PushAll || ccs[0].AckPolicy != jetstream.AckExplicitPolicy {
		t.Fatalf("push consumer %+v", ccs)
	}
}
