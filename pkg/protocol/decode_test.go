package protocol

import (
	"encoding/json"
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
		"unknown field":     []byte(`{"type":"ping","future":true}`),
		"escaped backslash": []byte(`{"type":"send","client_msg_id":"c1","conversation_id":"x","text":"a\\ud800"}`),
		"100k emoji":        sendFrame(strings.Repeat("😀", MaxTextRunes)),
		"100k ascii":        sendFrame(strings.Repeat("a", MaxTextRunes)),
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
	} {
		_, e := Decode(tc.raw)
		if e == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if e.Code != tc.code || e.Ref != tc.ref || e.Type != TypeError || e.Message == "" {
			t.Errorf("%s: got %+v, want code %s ref %q", tc.name, e, tc.code, tc.ref)
		}
	}
}

func TestCloseCodesReconnect(t *testing.T) {
	for _, c := range []CloseCode{CloseShutdown, CloseSlowConsumer, CloseHeartbeatTimeout, CloseResync, CloseInternal} {
		if !c.Reconnect() {
			t.Errorf("%d should reconnect", c)
		}
	}
	for _, c := range []CloseCode{CloseUnauthorized, CloseReplaced, ClosePolicy} {
		if c.Reconnect() {
			t.Errorf("%d should not reconnect", c)
		}
	}
}

// FuzzDecode: whatever the bytes, Decode never panics, and an accepted send obeys every limit.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"type":"ping"}`, `{"type":"send","client_msg_id":"a","conversation_id":"b","text":"hi"}`,
		`{"type":"send","text":"\ud83d\ude00"}`, `{"type":"send","text":"\ud800\\u"}`, `[`, "\xff", `{"type":"x","id":"y"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, e := Decode(raw)
		if e != nil {
			if e.Code == "" || e.Type != TypeError {
				t.Fatalf("error frame without code: %+v", e)
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
