package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func sendFrame(text string) []byte {
	b, _ := json.Marshal(ClientFrame{Type: TypeSend, ClientMsgID: "c1", ConversationID: "conv1", Text: text})
	return b
}

func TestDecodeAccepts(t *testing.T) {
	for name, raw := range map[string][]byte{
		"send":              sendFrame("hello"),
		"send emoji pair":   []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"x","text":"\ud83d\ude00"}`),
		"ping":              []byte(`{"type":"ping","id":"p1"}`),
		"auth":              []byte(`{"type":"auth","id":"t1","token":"eyJ.a.b"}`),
		"unknown field":     []byte(`{"type":"ping","future":true}`),
		"escaped backslash": []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"x","text":"a\\ud800"}`),
		"100k emoji":        sendFrame(strings.Repeat("😀", MaxTextRunes)),
		"100k ascii":        sendFrame(strings.Repeat("a", MaxTextRunes)),
		"up_to 2^63":        []byte(`{"type":"read","conversation_id":"c","up_to":9223372036854775808}`),
		"up_to 2^64-1":      []byte(`{"type":"delivered","conversation_id":"c","up_to":18446744073709551615}`),
		"null fields":       []byte(`{"type":"ping","id":null,"text":null,"up_to":null,"user_ids":null}`),
		"edit":              []byte(`{"type":"edit","client_msg_id":"e1","conversation_id":"c","target_seq":5,"text":"fixed"}`),
		"delete":            []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c","target_seq":5}`),
		"delete everyone":   []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c","target_seq":5,"for":"everyone"}`),
		"delete for me":     []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c","target_seq":5,"for":"me"}`),
		"100k escaped emoji": []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"x","text":"` +
			strings.Repeat(`\ud83d\ude00`, MaxTextRunes) + `"}`),
	} {
		if _, e := Decode(raw); e != nil {
			t.Errorf("%s: unexpected error %v", name, e)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		code Code
		ref  string
	}{
		{"not json", []byte(`hello`), CodeInvalidJSON, ""},
		{"array", []byte(`[1]`), CodeInvalidJSON, ""},
		{"two objects", []byte(`{"type":"ping"}{"type":"ping"}`), CodeInvalidJSON, ""},
		{"truncated", []byte(`{"type":"send"`), CodeInvalidJSON, ""},
		{"bad utf8", []byte("{\"type\":\"send\",\"text\":\"\xff\"}"), CodeInvalidUTF8, ""},
		{"lone high surrogate", []byte(`{"type":"send","client_msg_id":"c","conversation_id":"x","text":"\ud800"}`), CodeInvalidUTF8, ""},
		{"lone low surrogate", []byte(`{"type":"send","client_msg_id":"c","conversation_id":"x","text":"\udc00x"}`), CodeInvalidUTF8, ""},
		{"no type", []byte(`{"id":"r1"}`), CodeInvalidFrame, "r1"},
		{"unknown type", []byte(`{"type":"explode","id":"r2"}`), CodeUnknownType, "r2"},
		{"empty text", sendFrame(""), CodeTextEmpty, "c1"},
		{"too long", sendFrame(strings.Repeat("a", MaxTextRunes+1)), CodeTextTooLong, "c1"},
		{"too long emoji", sendFrame(strings.Repeat("😀", MaxTextRunes+1)), CodeTextTooLong, "c1"},
		{"bad conversation", []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"a.>","text":"x"}`), CodeInvalidFrame, "c1"},
		{"no client id", []byte(`{"type":"send","conversation_id":"x","text":"x"}`), CodeInvalidFrame, ""},
		{"long id", []byte(`{"type":"ping","id":"` + strings.Repeat("i", 65) + `"}`), CodeInvalidFrame, ""},
		{"oversize", make([]byte, MaxFrameBytes+1), CodeFrameTooLarge, ""},
		{"read without up_to", []byte(`{"type":"read","id":"r","conversation_id":"c"}`), CodeInvalidFrame, "r"},
		{"read bad conversation", []byte(`{"type":"read","conversation_id":"a b","up_to":1}`), CodeInvalidFrame, ""},
		{"typing bad state", []byte(`{"type":"typing","conversation_id":"c","state":"maybe"}`), CodeInvalidFrame, ""},
		{"presence of nobody", []byte(`{"type":"presence","user_ids":[]}`), CodeInvalidFrame, ""},
		{"presence of 101", []byte(`{"type":"presence","user_ids":[` + strings.Repeat(`"u",`, 100) + `"u"]}`), CodeInvalidFrame, ""},
		{"presence bad id", []byte(`{"type":"presence","user_ids":["*"]}`), CodeInvalidFrame, ""},
		{"auth without token", []byte(`{"type":"auth","id":"t"}`), CodeInvalidFrame, "t"},
		{"auth token too long", []byte(`{"type":"auth","id":"t","token":"` + strings.Repeat("a", MaxTokenBytes+1) + `"}`), CodeInvalidFrame, "t"},
		{"auth token number", []byte(`{"type":"auth","id":"t","token":1}`), CodeInvalidFrame, "t"},
		{"edit without target", []byte(`{"type":"edit","client_msg_id":"e1","conversation_id":"c","text":"x"}`), CodeInvalidFrame, "e1"},
		{"edit without text", []byte(`{"type":"edit","client_msg_id":"e1","conversation_id":"c","target_seq":5}`), CodeTextEmpty, "e1"},
		{"edit too long", []byte(`{"type":"edit","client_msg_id":"e1","conversation_id":"c","target_seq":5,"text":"` + strings.Repeat("a", MaxTextRunes+1) + `"}`), CodeTextTooLong, "e1"},
		{"edit with for", []byte(`{"type":"edit","client_msg_id":"e1","conversation_id":"c","target_seq":5,"text":"x","for":"me"}`), CodeInvalidFrame, "e1"},
		{"edit without client id", []byte(`{"type":"edit","conversation_id":"c","target_seq":5,"text":"x"}`), CodeInvalidFrame, ""},
		{"delete bad for", []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c","target_seq":5,"for":"them"}`), CodeInvalidFrame, "d1"},
		{"delete with text", []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c","target_seq":5,"text":"x"}`), CodeInvalidFrame, "d1"},
		{"delete bad conversation", []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c.*","target_seq":5}`), CodeInvalidFrame, "d1"},
		{"target_seq negative", []byte(`{"type":"delete","client_msg_id":"d1","conversation_id":"c","target_seq":-5}`), CodeInvalidFrame, "d1"},
		{"closing brace after the object", []byte(`{"type":"ping","id":"p"}}`), CodeInvalidJSON, ""},
		{"closing bracket after the object", []byte(`{"type":"ping","id":"p"}]`), CodeInvalidJSON, ""},

		// A field of the wrong type is a malformed field of one JSON object: invalid_frame, with
		// the ref recovered from the fields that are right.
		{"up_to negative", []byte(`{"type":"read","id":"r","conversation_id":"c","up_to":-1}`), CodeInvalidFrame, "r"},
		{"up_to fraction", []byte(`{"type":"read","id":"r","conversation_id":"c","up_to":1.5}`), CodeInvalidFrame, "r"},
		{"up_to exponent", []byte(`{"type":"delivered","id":"r","conversation_id":"c","up_to":1e2}`), CodeInvalidFrame, "r"},
		{"up_to 1e400", []byte(`{"type":"read","id":"r","conversation_id":"c","up_to":1e400}`), CodeInvalidFrame, "r"},
		{"up_to 2^64", []byte(`{"type":"read","id":"r","conversation_id":"c","up_to":18446744073709551616}`), CodeInvalidFrame, "r"},
		{"up_to string", []byte(`{"type":"read","id":"r","conversation_id":"c","up_to":"8"}`), CodeInvalidFrame, "r"},
		{"up_to bool", []byte(`{"type":"delivered","id":"r","conversation_id":"c","up_to":true}`), CodeInvalidFrame, "r"},
		{"up_to object, id after it", []byte(`{"type":"read","conversation_id":"c","up_to":{},"id":"r"}`), CodeInvalidFrame, "r"},
		{"type number", []byte(`{"type":5,"id":"r"}`), CodeInvalidFrame, "r"},
		{"type array", []byte(`{"type":["send"],"id":"r","client_msg_id":"c1"}`), CodeInvalidFrame, "r"},
		{"id number", []byte(`{"type":"ping","id":5}`), CodeInvalidFrame, ""},
		{"send id number falls back to client_msg_id", []byte(`{"type":"send","id":5,"client_msg_id":"c1","conversation_id":"x","text":"hi"}`), CodeInvalidFrame, "c1"},
		{"client_msg_id number", []byte(`{"type":"send","id":"r","client_msg_id":7,"conversation_id":"x","text":"hi"}`), CodeInvalidFrame, "r"},
		{"conversation_id number", []byte(`{"type":"send","client_msg_id":"c1","conversation_id":7,"text":"hi"}`), CodeInvalidFrame, "c1"},
		{"text number", []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"x","text":42}`), CodeInvalidFrame, "c1"},
		{"text object", []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"x","text":{"a":"b"}}`), CodeInvalidFrame, "c1"},
		{"text array", []byte(`{"type":"send","text":["hi"],"conversation_id":"x","client_msg_id":"c1"}`), CodeInvalidFrame, "c1"},
		{"state bool", []byte(`{"type":"typing","id":"t","conversation_id":"c","state":true}`), CodeInvalidFrame, "t"},
		{"user_ids string", []byte(`{"type":"presence","id":"p","user_ids":"u1"}`), CodeInvalidFrame, "p"},
		{"user_ids element number", []byte(`{"type":"presence","id":"p","user_ids":["u1",2]}`), CodeInvalidFrame, "p"},
		{"user_ids object", []byte(`{"type":"presence","id":"p","user_ids":{"u1":true}}`), CodeInvalidFrame, "p"},
		{"two fields wrong", []byte(`{"type":"read","id":"r","conversation_id":1,"up_to":-1}`), CodeInvalidFrame, "r"},
		{"wrong type and long id", []byte(`{"type":"read","id":"` + strings.Repeat("i", 65) + `","conversation_id":"c","up_to":-1}`), CodeInvalidFrame, ""},
	} {
		_, e := Decode(tc.raw)
		if e == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if e.Code != tc.code || e.Ref != tc.ref || e.Type != TypeError || e.Message == "" {
			t.Errorf("%s: got %+v, want code %s ref %q", tc.name, e, tc.code, tc.ref)
		}
		if w := goInternals(e.Message); w != "" {
			t.Errorf("%s: message %q names %q, an internal of the decoder", tc.name, e.Message, w)
		}
	}
}

// goInternals returns a word of encoding/json's own wording found in msg, or "".
func goInternals(msg string) string {
	for _, w := range []string{"Go struct", "Go value", "uint64", "unmarshal", "ClientFrame"} {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			return w
		}
	}
	return ""
}

// Every field of ClientFrame has a message for a value of the wrong type, so a field added later
// without one fails here rather than telling clients "a field has a value of the wrong type".
func TestDecodeNamesEveryWrongTypedField(t *testing.T) {
	ft := reflect.TypeFor[ClientFrame]()
	for i := range ft.NumField() {
		name, _, _ := strings.Cut(ft.Field(i).Tag.Get("json"), ",")
		wrong := `{}` // a string, a number and an array field all refuse an object
		raw := []byte(`{"type":"send","id":"r",` + strconv.Quote(name) + `:` + wrong + `}`)
		if name == "id" {
			raw = []byte(`{"type":"send","client_msg_id":"r","id":{}}`)
		}
		_, e := Decode(raw)
		want, ok := wrongTypeMessages[name]
		if !ok || e == nil || e.Code != CodeInvalidFrame || e.Message != want || e.Ref != "r" {
			t.Errorf("field %s: got %+v, want invalid_frame %q with ref r", name, e, want)
		}
		if !strings.HasPrefix(want, name+" ") {
			t.Errorf("field %s: message %q does not start with the field's name", name, want)
		}
	}
}

func TestCloseCodesReconnect(t *testing.T) {
	for _, c := range []CloseCode{CloseShutdown, CloseSlowConsumer, CloseHeartbeatTimeout, CloseResync, CloseInternal} {
		if !c.Reconnect() {
			t.Errorf("%d should reconnect", c)
		}
	}
	for _, c := range []CloseCode{CloseUnauthorized, CloseSessionEnded, CloseReplaced, ClosePolicy} {
		if c.Reconnect() {
			t.Errorf("%d should not reconnect", c)
		}
	}
}

// FuzzDecode: whatever the bytes, Decode never panics, and an accepted send obeys every limit.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"type":"ping"}`, `{"type":"send","client_msg_id":"a","conversation_id":"b","text":"hi"}`,
		`{"type":"send","text":"\ud83d\ude00"}`, `{"type":"send","text":"\ud800\\u"}`, `[`, "\xff", `{"type":"x","id":"y"}`,
		`{"type":"read","id":"r","conversation_id":"c","up_to":-1}`, `{"type":"presence","user_ids":["a",1]}`, `{"type":"ping"}}`,
		`{"type":"edit","client_msg_id":"e","conversation_id":"c","target_seq":5,"text":"x"}`,
		`{"type":"delete","client_msg_id":"d","conversation_id":"c","target_seq":5,"for":"me"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, e := Decode(raw)
		if e != nil {
			if e.Code == "" || e.Type != TypeError {
				t.Fatalf("error frame without code: %+v", e)
			}
			// Messages are for people: never the decoder's Go wording (unless the client's own
			// bytes, echoed as an unknown type, spell it).
			if w := goInternals(e.Message); w != "" && !strings.Contains(strings.ToLower(string(raw)), strings.ToLower(w)) {
				t.Fatalf("message %q names %q for %q", e.Message, w, raw)
			}
			// Past the size and UTF-8 checks, invalid_json is exactly for input that is not one
			// JSON object: a field of the wrong type is invalid_frame.
			if e.Code != CodeFrameTooLarge && e.Code != CodeInvalidUTF8 {
				isObject := json.Valid(raw) && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{"))
				if isObject == (e.Code == CodeInvalidJSON) {
					t.Fatalf("code %s for %q (one JSON object: %v)", e.Code, raw, isObject)
				}
			}
			return
		}
		if fr.Type == TypeSend {
			if fr.Text == "" || !utf8.ValidString(fr.Text) || utf8.RuneCountInString(fr.Text) > MaxTextRunes {
				t.Fatalf("accepted bad text %q", fr.Text)
			}
			if strings.ContainsRune(fr.Text, utf8.RuneError) && !strings.Contains(string(raw), "\uFFFD") && !strings.Contains(strings.ToLower(string(raw)), `\ufffd`) {
				t.Fatalf("decoder replaced invalid input with U+FFFD: %q", raw)
			}
		}
	})
}

// Decode runs for every client frame; go test -bench Decode -benchmem ./sdk/go/protocol.
func BenchmarkDecode(b *testing.B) {
	for name, raw := range map[string][]byte{
		"send":          sendFrame("hello, how are you today?"),
		"send 4KiB":     sendFrame(strings.Repeat("a", 4096)),
		"read":          []byte(`{"type":"read","id":"r1","conversation_id":"dtfnjvkiqiztpyiy4ohsdsqoep","up_to":8}`),
		"wrong-typed":   []byte(`{"type":"read","id":"r1","conversation_id":"dtfnjvkiqiztpyiy4ohsdsqoep","up_to":-8}`),
		"not an object": []byte(`{"type":"read","id":"r1","conversation_id":"dtfnjvkiqiztpyiy4ohsdsqoep","up_to":8`),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Decode(raw)
			}
		})
	}
}

// Event.AppendJSON writes exactly what json.Marshal writes, for any field values.
func FuzzEventJSON(f *testing.F) {
	f.Add("message", uint64(7), "conv", "01M80KC42R86VJ9FTBJSDG9NTY", "alice", "phone", "c1", "hello <b>&</b> \"q\" \\ \n\t\u2028 é 😀", int64(1795316650072), "", "", uint64(0), int64(0), false)
	f.Add("member", uint64(1), "c", "m", "s", "", "", "", int64(-1), "added", "bob", uint64(0), int64(0), false)
	f.Add("edit", uint64(9), "c", "m", "s", "d", "x", "new \xff text", int64(5), "", "", uint64(3), int64(6), true)
	f.Add("message", uint64(2), "c", "m", "s", "", "", "1 < 2 > 0", int64(5), "", "", uint64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, typ string, seq uint64, conv, mid, sender, device, cmid, text string, sentAt int64,
		action, user string, targetSeq uint64, editedAt int64, deleted bool) {
		e := Event{Type: typ, Seq: seq, ConversationID: conv, MessageID: mid, SenderID: sender, SenderDevice: device,
			ClientMsgID: cmid, Text: text, SentAt: sentAt, EditedAt: editedAt, Deleted: deleted}
		if action != "" {
			e.Member = &MemberChange{Action: action, UserIDs: []string{user}, Name: text}
		}
		if targetSeq != 0 {
			e.Target = &Target{Seq: targetSeq, MessageID: user}
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.AppendJSON([]byte("prefix"))
		if err != nil || string(got) != "prefix"+string(want) {
			t.Fatalf("AppendJSON wrote %s (%v), json.Marshal %s", got, err, want)
		}
	})
}

func FuzzAckJSON(f *testing.F) {
	f.Add("ack", "r1", "c1", "conv", "01M80KC42R86VJ9FTBJSDG9NTY", uint64(7), int64(1795316650072), false)
	f.Add("ack", "", "<&>\"\\ \u2028 \xff", "", "", uint64(0), int64(-1), true)
	f.Fuzz(func(t *testing.T, typ, ref, cmid, conv, mid string, seq uint64, sentAt int64, dup bool) {
		a := Ack{Type: typ, Ref: ref, ClientMsgID: cmid, ConversationID: conv, MessageID: mid, Seq: seq, SentAt: sentAt, Duplicate: dup}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.AppendJSON([]byte("prefix")); string(got) != "prefix"+string(want) {
			t.Fatalf("AppendJSON wrote %s, json.Marshal %s", got, want)
		}
	})
}

func BenchmarkEventJSON(b *testing.B) {
	e := Event{Type: TypeMessage, Seq: 123456, ConversationID: "dgkvx462jc4mvjvsulajhrjha7", MessageID: "01M80KC42R86VJ9FTBJSDG9NTY",
		SenderID: "01M80KC42R86VJ9FTBJSDG9NTZ", SenderDevice: "phone", ClientMsgID: "01M80KC42R86VJ9FTBJSDG9NT0",
		Text: strings.Repeat("x", 100), SentAt: 1795316650072}
	b.Run("json.Marshal", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for range b.N {
			var err error
			if buf, err = e.AppendJSON(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAckJSON(b *testing.B) {
	a := Ack{Type: TypeAck, Ref: "01M80KC42R86VJ9FTBJSDG9NT0", ClientMsgID: "01M80KC42R86VJ9FTBJSDG9NT0", ConversationID: "dgkvx462jc4mvjvsulajhrjha7",
		MessageID: "01M80KC42R86VJ9FTBJSDG9NTY", Seq: 123456, SentAt: 1795316650072}
	b.Run("json.Marshal", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		for range b.N {
			_ = a.AppendJSON(make([]byte, 0, 160))
		}
	})
}
