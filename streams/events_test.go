package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// golden reads testdata/name without its trailing newline: the bytes natter writes on the wire.
func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

func TestGoldenChatMsg(t *testing.T) {
	raw := golden(t, "chat_msg.json")
	ev, err := DecodeChatEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := ChatEvent{
		V: 1, Kind: KindMsg,
		ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
		MessageID:      "01J9ZK4A0B2C4D6E8F0G2H4J6K",
		SenderID:       "u_alice", SenderDevice: "d_phone", ClientMsgID: "c-0001",
		Text:   `héllo, wörld 👋 "quoted" <b>&amp;</b>`,
		SentAt: 1735689600123,
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", ev, want)
	}
	out, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded differs from golden\n got %s\nwant %s", out, raw)
	}
}

func TestGoldenChatMember(t *testing.T) {
	raw := golden(t, "chat_member.json")
	ev, err := DecodeChatEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := ChatEvent{
		V: 1, Kind: KindMember,
		ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
		MessageID:      "01J9ZK5M7N9P1Q3R5S7T9V1W3X",
		SenderID:       "u_alice",
		SentAt:         1735689700456,
		Member:         &MemberChange{Action: MemberAdded, UserIDs: []string{"u_bob", "u_carol"}, Name: "weekend plans"},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("decoded\n got %+v (member %+v)\nwant %+v (member %+v)", ev, ev.Member, want, want.Member)
	}
	out, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded differs from golden\n got %s\nwant %s", out, raw)
	}
}

// The owner leaving names the successor in the event, so every replay makes the same user owner.
func TestGoldenChatMemberLeftWithSuccessor(t *testing.T) {
	raw := golden(t, "chat_member_left_owner.json")
	ev, err := DecodeChatEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := ChatEvent{
		V: 1, Kind: KindMember,
		ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
		MessageID:      "01J9ZK6A1B3C5D7E9F1G3H5J7K",
		SenderID:       "u_alice",
		SentAt:         1735689800123,
		Member:         &MemberChange{Action: MemberLeft, UserIDs: []string{"u_alice"}, Owner: "u_carol"},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("decoded\n got %+v (member %+v)\nwant %+v (member %+v)", ev, ev.Member, want, want.Member)
	}
	out, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded differs from golden\n got %s\nwant %s", out, raw)
	}
}

func TestGoldenChatRead(t *testing.T) {
	raw := golden(t, "chat_read.json")
	ev, err := DecodeChatEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := ChatEvent{
		V: 1, Kind: KindRead,
		ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
		MessageID:      "01J9ZK7P9Q1R3S5T7V9W1X3Y5Z",
		SenderID:       "u_bob", SenderDevice: "d_web",
		SentAt: 1735689800789,
		UpTo:   41,
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", ev, want)
	}
	out, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded differs from golden\n got %s\nwant %s", out, raw)
	}
}

func TestGoldenChatRevisions(t *testing.T) {
	target := &Target{Seq: 40, MessageID: "01J9ZK4A0B2C4D6E8F0G2H4J6K"}
	for name, want := range map[string]ChatEvent{
		"chat_edit.json": {V: 1, Kind: KindEdit, ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
			MessageID: "01J9ZK8B1C3D5E7F9G1H3J5K7M", SenderID: "u_alice", SenderDevice: "d_phone",
			ClientMsgID: "c-0002", Text: "héllo, world 👋", SentAt: 1735689900111, Target: target},
		"chat_delete.json": {V: 1, Kind: KindDelete, ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
			MessageID: "01J9ZK9C2D4E6F8G0H2J4K6M8N", SenderID: "u_alice", SenderDevice: "d_web",
			ClientMsgID: "c-0003", SentAt: 1735689950222, Target: target},
		"chat_hide.json": {V: 1, Kind: KindHide, ConversationID: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
			MessageID: "01J9ZKAD3E5F7G9H1J3K5M7N9P", SenderID: "u_bob", SenderDevice: "d_web",
			ClientMsgID: "c-0004", SentAt: 1735689960333, Target: target},
	} {
		raw := golden(t, name)
		ev, err := DecodeChatEvent(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(ev, want) {
			t.Fatalf("%s decoded\n got %+v\nwant %+v", name, ev, want)
		}
		out, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, raw) {
			t.Fatalf("%s re-encoded differs from golden\n got %s\nwant %s", name, out, raw)
		}
	}
}

func TestDecodeRevisionNeedsATarget(t *testing.T) {
	for _, raw := range []string{
		`{"v":1,"kind":"edit","conversation_id":"c","message_id":"m","text":"x"}`,
		`{"v":1,"kind":"delete","conversation_id":"c","message_id":"m","target":{"seq":0,"message_id":"t"}}`,
		`{"v":1,"kind":"hide","conversation_id":"c","message_id":"m","target":{"seq":3}}`,
	} {
		if _, err := DecodeChatEvent([]byte(raw)); err == nil {
			t.Errorf("accepted %s", raw)
		}
	}
}

// roundTrip decodes raw into a fresh T with encoding/json (the contract's codec for these
// values), checks it equals want, and re-encodes it byte-identically.
func roundTrip[T any](t *testing.T, raw []byte, want T) {
	t.Helper()
	var got T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // every golden field must be a field of the type
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n got %+v\nwant %+v", got, want)
	}
	out, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("re-encoded differs from golden\n got %s\nwant %s", out, raw)
	}
}

// A timeline Delivery: the event's client frame, built once by fanout, numbered in its chain.
func TestGoldenDelivery(t *testing.T) {
	roundTrip(t, golden(t, "delivery.json"), Delivery{
		Seq:          42,
		Conversation: "01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
		Users:        []string{"u_alice", "u_bob"},
		Frame: json.RawMessage(`{"type":"message","seq":42,"conversation_id":"01J9ZK3V8Q2W5X7Y9A1B3C5D7E","message_id":"01J9ZK4A0B2C4D6E8F0G2H4J6K",` +
			`"sender_id":"u_alice","sender_device":"d_phone","client_msg_id":"c-0001","text":"hi","sent_at":1735689600123}`),
		Chain: 7,
		N:     3,
	})
}

// A Delivery outside the timeline: no seq, a ready-made frame.
func TestGoldenDeliveryFrame(t *testing.T) {
	roundTrip(t, golden(t, "delivery_frame.json"), Delivery{
		Users: []string{"u_alice", "u_bob"},
		Frame: json.RawMessage(`{"type":"receipt","conversation_id":"01J9ZK3V8Q2W5X7Y9A1B3C5D7E","user_id":"u_alice","kind":"read","up_to":42}`),
	})
}

// A resync: the gateway's next events do not follow on from its last ones.
func TestGoldenDeliveryResync(t *testing.T) {
	roundTrip(t, golden(t, "delivery_resync.json"), Delivery{Users: []string{}, Resync: true})
}

func TestGoldenRoute(t *testing.T) {
	roundTrip(t, golden(t, "route.json"), Route{Gateway: "gw-1", Conn: "01J9ZK6C8D0E2F4G6H8J0K2M4N", Since: 1735689600000})
}

func TestGoldenGatewayInfo(t *testing.T) {
	roundTrip(t, golden(t, "gateway_info.json"), GatewayInfo{ID: "gw-1", URL: "ws://10.0.0.7:8080/ws", Connections: 1234, Updated: 1735689601000})
}

func TestEncodeStampsCurrentVersion(t *testing.T) {
	out, err := ChatEvent{V: 7, Kind: KindMsg, ConversationID: "c", MessageID: "m"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"kind":"msg","conversation_id":"c","message_id":"m","sender_id":"","sent_at":0}`; string(out) != want {
		t.Fatalf("got %s\nwant %s", out, want)
	}
}

func TestDecodeChatEventRejectsOtherVersions(t *testing.T) {
	for _, v := range []string{`0`, `2`, `-1`, `99`} {
		raw := `{"v":` + v + `,"kind":"msg","conversation_id":"c","message_id":"m"}`
		ev, err := DecodeChatEvent([]byte(raw))
		if !errors.Is(err, ErrVersion) {
			t.Errorf("v=%s: err %v, want ErrVersion", v, err)
		}
		if !reflect.DeepEqual(ev, ChatEvent{}) {
			t.Errorf("v=%s: returned %+v alongside the error", v, ev)
		}
	}
	// No version at all is version 0.
	if _, err := DecodeChatEvent([]byte(`{"kind":"msg","conversation_id":"c","message_id":"m"}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("missing v: err %v, want ErrVersion", err)
	}
}

func TestDecodeChatEventRejectsMissingFields(t *testing.T) {
	for name, raw := range map[string]string{
		"no kind":            `{"v":1,"conversation_id":"c","message_id":"m"}`,
		"no conversation_id": `{"v":1,"kind":"msg","message_id":"m"}`,
		"no message_id":      `{"v":1,"kind":"msg","conversation_id":"c"}`,
		"empty kind":         `{"v":1,"kind":"","conversation_id":"c","message_id":"m"}`,
		"empty object":       `{"v":1}`,
	} {
		ev, err := DecodeChatEvent([]byte(raw))
		if err == nil {
			t.Errorf("%s: accepted %+v", name, ev)
			continue
		}
		if errors.Is(err, ErrVersion) {
			t.Errorf("%s: reported as a version error: %v", name, err)
		}
		if !strings.Contains(err.Error(), "required") {
			t.Errorf("%s: error %q does not say what is required", name, err)
		}
	}
}

func TestDecodeChatEventRejectsMalformedJSON(t *testing.T) {
	for _, raw := range []string{``, `null`, `[]`, `{`, `{"v":"1","kind":"msg","conversation_id":"c","message_id":"m"}`, `{"v":1,"member":"added"}`} {
		if ev, err := DecodeChatEvent([]byte(raw)); err == nil {
			t.Errorf("%q: accepted %+v", raw, ev)
		}
	}
}

func FuzzDecodeChatEvent(f *testing.F) {
	for _, name := range []string{"chat_msg.json", "chat_member.json", "chat_read.json", "chat_edit.json", "chat_delete.json", "chat_hide.json"} {
		f.Add(golden(f, name))
	}
	f.Add([]byte(`{"v":2,"kind":"msg","conversation_id":"c","message_id":"m"}`))
	f.Add([]byte(`{"v":1,"kind":"msg","conversation_id":"c"}`))
	f.Add([]byte(`{"v":1,"kind":"x","conversation_id":"c","message_id":"m","member":{"user_ids":[]}}`))
	f.Add([]byte(`{"v":1e0,"kind":"\ud800","conversation_id":"\u0000","message_id":"\xff"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeChatEvent(data)
		if err != nil {
			if !reflect.DeepEqual(ev, ChatEvent{}) {
				t.Fatalf("error %v returned with a non-zero event %+v", err, ev)
			}
			return
		}
		if ev.V != Version || ev.Kind == "" || ev.ConversationID == "" || ev.MessageID == "" {
			t.Fatalf("accepted an event without version or required fields: %+v", ev)
		}
		if Revises(ev.Kind) && (ev.Target == nil || ev.Target.Seq == 0 || ev.Target.MessageID == "") {
			t.Fatalf("accepted a %s without a whole target: %+v", ev.Kind, ev)
		}
		// What was accepted encodes, decodes again to the same encoding, and stays valid.
		out, err := ev.Encode()
		if err != nil {
			t.Fatalf("encode accepted event: %v", err)
		}
		again, err := DecodeChatEvent(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		out2, err := again.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
	})
}

func TestEventFromChatRevisions(t *testing.T) {
	target := &Target{Seq: 5, MessageID: "m5"}
	for kind, want := range map[string]protocol.Event{
		KindEdit:   {Type: protocol.TypeEdit, Seq: 9, ConversationID: "c", MessageID: "m9", SenderID: "u", Text: "new", SentAt: 77, Target: target, EditedAt: 77},
		KindDelete: {Type: protocol.TypeDelete, Seq: 9, ConversationID: "c", MessageID: "m9", SenderID: "u", SentAt: 77, Target: target, Deleted: true},
		KindHide:   {Type: protocol.TypeHide, Seq: 9, ConversationID: "c", MessageID: "m9", SenderID: "u", SentAt: 77, Target: target, Deleted: true},
	} {
		text := ""
		if kind == KindEdit {
			text = "new"
		}
		got := EventFromChat(9, ChatEvent{V: 1, Kind: kind, ConversationID: "c", MessageID: "m9", SenderID: "u", Text: text, SentAt: 77, Target: target})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", kind, got, want)
		}
	}
}

// FuzzChatEventEncode: Encode writes what json.Marshal writes, and the fast decoder reads it
// back when there is no member or target body.
func FuzzChatEventEncode(f *testing.F) {
	f.Add("msg", "c", "01M80KC42R86VJ9FTBJSDG9NTY", "s", "phone", "c1", "hello <b>&</b> \"q\" \\ \n\t\u2028 é 😀", int64(1795316650072), "", "", uint64(0), uint64(0))
	f.Add("member", "c", "m", "s", "", "", "", int64(-1), "added", "bob", uint64(0), uint64(0))
	f.Add("edit", "c", "m", "s", "d", "x", "new \xff text", int64(5), "", "m3", uint64(3), uint64(0))
	f.Add("read", "c", "m", "s", "d", "", "", int64(5), "", "", uint64(0), uint64(41))
	f.Fuzz(func(t *testing.T, kind, conv, mid, sender, device, cmid, text string, sentAt int64, action, user string, targetSeq, upTo uint64) {
		ev := ChatEvent{Kind: kind, ConversationID: conv, MessageID: mid, SenderID: sender, SenderDevice: device,
			ClientMsgID: cmid, Text: text, SentAt: sentAt, UpTo: upTo}
		if action != "" {
			ev.Member = &MemberChange{Action: action, UserIDs: []string{user}, Name: text}
		}
		if targetSeq != 0 {
			ev.Target = &Target{Seq: targetSeq, MessageID: user}
		}
		got, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ev.V = Version
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Encode wrote %s, json.Marshal %s", got, want)
		}
		if fast, ok := decodeChatFast(got); ok && !reflect.DeepEqual(fast, ev) {
			t.Fatalf("the fast decoder read %s as %+v", got, fast)
		}
	})
}

// decodeChatFast returns exactly what json.Unmarshal returns whenever it takes an input, and
// takes what ChatEvent.Encode writes for events without a member or target body.
func FuzzDecodeChatFast(f *testing.F) {
	for _, name := range []string{"chat_msg.json", "chat_member.json", "chat_read.json", "chat_edit.json"} {
		f.Add(golden(f, name))
	}
	for _, ev := range []ChatEvent{
		{Kind: KindMsg, ConversationID: "c", MessageID: "m", SenderID: "s", SenderDevice: "d", ClientMsgID: "x", Text: "héllo 😀 <&>", SentAt: 1795316650072},
		{Kind: KindRead, ConversationID: "c", MessageID: "m", SenderID: "s", SentAt: -5, UpTo: 41},
		{Kind: KindMsg, ConversationID: "c", MessageID: "m", SenderID: "s", Text: "a \"q\" \\ \n"},
	} {
		b, err := ev.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"kind":"msg","conversation_id":"c","message_id":"m","sender_id":"s","sent_at":01}`))
	f.Add([]byte(`{"v":1,"kind":"msg","conversation_id":"c","message_id":"m","sender_id":"s","text":"\xff","sent_at":1}`))
	f.Add([]byte(`{"v":1,"kind":"msg","conversation_id":"c","message_id":"m","sender_id":"s","sent_at":1,"up_to":-1}`))
	f.Add([]byte(`{"v":99999999999999999999,"kind":"msg","conversation_id":"c","message_id":"m","sender_id":"s","sent_at":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeChatFast(data)
		if !ok {
			return
		}
		var want ChatEvent
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("the fast path took %q, which json.Unmarshal refuses: %v", data, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("the fast path read %q as %+v, json.Unmarshal as %+v", data, fast, want)
		}
	})
}

// Events as the gateway writes them take the fast path.
func TestEncodedEventsTakeTheFastPath(t *testing.T) {
	ev := ChatEvent{Kind: KindMsg, ConversationID: "c", MessageID: "m", SenderID: "s", SenderDevice: "d", ClientMsgID: "x", Text: "héllo", SentAt: 17}
	b, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeChatFast(b)
	ev.V = Version
	if !ok || !reflect.DeepEqual(got, ev) {
		t.Fatalf("%s: fast path %v, %+v", b, ok, got)
	}
}

func BenchmarkDecodeChatEvent(b *testing.B) {
	data, err := ChatEvent{Kind: KindMsg, ConversationID: "dgkvx462jc4mvjvsulajhrjha7", MessageID: "01M80KC42R86VJ9FTBJSDG9NTY",
		SenderID: "01M80KC42R86VJ9FTBJSDG9NTZ", SenderDevice: "phone", ClientMsgID: "01M80KC42R86VJ9FTBJSDG9NT0",
		Text: strings.Repeat("x", 100), SentAt: 1795316650072}.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("json.Unmarshal", func(b *testing.B) {
		for range b.N {
			var ev ChatEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeChatEvent", func(b *testing.B) {
		for range b.N {
			if _, err := DecodeChatEvent(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkChatEventEncode(b *testing.B) {
	ev := ChatEvent{V: Version, Kind: KindMsg, ConversationID: "dgkvx462jc4mvjvsulajhrjha7", MessageID: "01M80KC42R86VJ9FTBJSDG9NTY",
		SenderID: "01M80KC42R86VJ9FTBJSDG9NTZ", SenderDevice: "phone", ClientMsgID: "01M80KC42R86VJ9FTBJSDG9NT0",
		Text: strings.Repeat("x", 100), SentAt: 1795316650072}
	b.Run("json.Marshal", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Encode", func(b *testing.B) {
		for range b.N {
			if _, err := ev.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
