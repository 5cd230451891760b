package streams

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// decodeChatFast reads data when it has exactly the shape ChatEvent.Encode writes (the fields in
// their order, no whitespace, strings without escapes, no member or target body) and returns
// what json.Unmarshal would; ok is false for anything else, which json.Unmarshal then reads
// (FuzzDecodeChatFast holds it to that). Every consumer of CHAT decodes every event: this is
// the shape nearly all of them have, at a fraction of json.Unmarshal's cost.
func decodeChatFast(data []byte) (ev ChatEvent, ok bool) {
	r := chatReader{b: data}
	var v int64
	if !r.lit(`{"v":`) || !r.int(&v) || !r.lit(`,"kind":`) || !r.str(&ev.Kind) ||
		!r.lit(`,"conversation_id":`) || !r.str(&ev.ConversationID) ||
		!r.lit(`,"message_id":`) || !r.str(&ev.MessageID) || !r.lit(`,"sender_id":`) || !r.str(&ev.SenderID) {
		return ChatEvent{}, false
	}
	ev.V = int(v)
	if r.lit(`,"sender_device":`) && !r.str(&ev.SenderDevice) ||
		r.lit(`,"client_msg_id":`) && !r.str(&ev.ClientMsgID) ||
		r.lit(`,"text":`) && !r.str(&ev.Text) ||
		!r.lit(`,"sent_at":`) || !r.int(&ev.SentAt) {
		return ChatEvent{}, false
	}
	if r.lit(`,"up_to":`) {
		var upTo int64
		if !r.int(&upTo) || upTo < 0 {
			return ChatEvent{}, false
		}
		ev.UpTo = uint64(upTo)
	}
	if !r.lit(`}`) || len(r.b) != 0 || int64(ev.V) != v {
		return ChatEvent{}, false
	}
	return ev, true
}

// chatReader consumes a byte slice from the front.
type chatReader struct{ b []byte }

// lit consumes s if the input starts with it.
func (r *chatReader) lit(s string) bool {
	if len(r.b) < len(s) || string(r.b[:len(s)]) != s {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// str consumes a JSON string that decodes to its own bytes: no escape, no control character,
// valid UTF-8 (json.Unmarshal would replace invalid bytes).
func (r *chatReader) str(out *string) bool {
	if len(r.b) == 0 || r.b[0] != '"' {
		return false
	}
	end := bytes.IndexByte(r.b[1:], '"')
	if end < 0 {
		return false
	}
	s := r.b[1 : 1+end]
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '\\' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		i += size
	}
	*out = string(s)
	r.b = r.b[2+end:]
	return true
}

// int consumes a JSON integer: an optional minus, then 0 or digits without a leading zero.
func (r *chatReader) int(out *int64) bool {
	n := 0
	if n < len(r.b) && r.b[n] == '-' {
		n++
	}
	start := n
	for n < len(r.b) && r.b[n] >= '0' && r.b[n] <= '9' {
		n++
	}
	if n == start || r.b[start] == '0' && n-start > 1 {
		return false
	}
	if n < len(r.b) && (r.b[n] == '.' || r.b[n] == 'e' || r.b[n] == 'E') {
		return false
	}
	v, err := strconv.ParseInt(string(r.b[:n]), 10, 64)
	if err != nil {
		return false
	}
	*out, r.b = v, r.b[n:]
	return true
}
