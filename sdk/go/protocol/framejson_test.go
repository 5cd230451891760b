package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

// decodeFrameFast reads what clients write, and bows out of what it cannot read exactly.
func TestDecodeFrameFast(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want ClientFrame
		ok   bool
	}{
		{`{"type":"send","id":"r","client_msg_id":"c","conversation_id":"v","text":"hé 😀","resend":true}`,
			ClientFrame{Type: "send", ID: "r", ClientMsgID: "c", ConversationID: "v", Text: "hé 😀", Resend: true}, true},
		{`{"text":"b","type":"send","text":"a"}`, ClientFrame{Type: "send", Text: "a"}, true}, // the last wins
		{`{"type":"read","conversation_id":"v","up_to":18446744073709551615}`,
			ClientFrame{Type: "read", ConversationID: "v", UpTo: 18446744073709551615}, true},
		{`{"type":"delete","target_seq":0,"for":"me","resend":false}`, ClientFrame{Type: "delete", For: "me"}, true},
		{`{}`, ClientFrame{}, true},
		{`{"type":"send","text":"a\nb"}`, ClientFrame{}, false},        // an escape
		{`{"Type":"send"}`, ClientFrame{}, false},                      // another spelling
		{`{"type":"presence","user_ids":["a"]}`, ClientFrame{}, false}, // an array
		{`{"type":"ping","extra":1}`, ClientFrame{}, false},            // an unknown key
		{`{"type": "ping"}`, ClientFrame{}, false},                     // whitespace
		{`{"up_to":18446744073709551616}`, ClientFrame{}, false},       // too large
		{`{"up_to":01}`, ClientFrame{}, false},                         // a leading zero
		{`{"up_to":1.5}`, ClientFrame{}, false},                        // a fraction
		{`{"type":"ping"}x`, ClientFrame{}, false},                     // trailing bytes
		{`{"type":"ping",}`, ClientFrame{}, false},                     // a trailing comma
		{`{"type":null}`, ClientFrame{}, false},                        // null
		{"{\"text\":\"a\x01\"}", ClientFrame{}, false},                 // a control character
	} {
		got, ok := decodeFrameFast([]byte(c.raw))
		if ok != c.ok || !reflect.DeepEqual(got, c.want) { // declined: the zero frame, for Unmarshal to fill
			t.Errorf("%s: got %+v, %v; want %+v, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}

// Whatever decodeFrameFast accepts, json.Unmarshal reads the same way.
func FuzzDecodeFrameFast(f *testing.F) {
	for _, s := range []string{`{"type":"send","id":"r","client_msg_id":"c","conversation_id":"v","text":"hi","resend":true}`,
		`{"type":"read","conversation_id":"v","up_to":7}`, `{"type":"delete","target_seq":3,"for":"me"}`,
		`{"type":"auth","token":"t"}`, `{"type":"typing","state":"start"}`, `{}`, `{"up_to":0}`, `{"type":"x","type":"y"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := decodeFrameFast(raw)
		if !ok {
			return
		}
		var want ClientFrame
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("fast read %q, json.Unmarshal refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %+v, json.Unmarshal %+v", raw, got, want)
		}
	})
}
