package protocol

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// decodeFrameFast reads data when it is a flat JSON object in the shape clients write (no
// whitespace, keys spelled exactly as ClientFrame's tags, strings without escapes, no
// user_ids) and returns what json.Unmarshal would; ok is false for anything else, which
// json.Unmarshal then reads (FuzzDecodeFrameFast holds it to that). Every send passes through
// here: this is the shape nearly all of them have, at a fraction of json.Unmarshal's cost.
func decodeFrameFast(data []byte) (f ClientFrame, ok bool) {
	r := frameReader{b: data}
	if !r.lit("{") {
		return ClientFrame{}, false
	}
	if r.lit("}") {
		return f, len(r.b) == 0
	}
	for {
		if !r.field(&f) {
			return ClientFrame{}, false
		}
		if r.lit("}") {
			return f, len(r.b) == 0
		}
		if !r.lit(",") {
			return ClientFrame{}, false
		}
	}
}

// frameReader consumes a byte slice from the front.
type frameReader struct{ b []byte }

// field consumes one "key":value pair into f; a later pair of the same key overwrites it, as
// with json.Unmarshal.
func (r *frameReader) field(f *ClientFrame) bool {
	var key string
	if !r.str(&key) || !r.lit(":") {
		return false
	}
	switch key {
	case "type":
		return r.str(&f.Type)
	case "id":
		return r.str(&f.ID)
	case "client_msg_id":
		return r.str(&f.ClientMsgID)
	case "conversation_id":
		return r.str(&f.ConversationID)
	case "text":
		return r.str(&f.Text)
	case "state":
		return r.str(&f.State)
	case "for":
		return r.str(&f.For)
	case "token":
		return r.str(&f.Token)
	case "resend":
		switch {
		case r.lit("true"):
			f.Resend = true
		case r.lit("false"):
			f.Resend = false
		default:
			return false
		}
		return true
	case "up_to":
		return r.uint(&f.UpTo)
	case "target_seq":
		return r.uint(&f.TargetSeq)
	}
	return false // user_ids, a key in another spelling, or one ClientFrame does not have
}

// lit consumes s if the input starts with it.
func (r *frameReader) lit(s string) bool {
	if len(r.b) < len(s) || string(r.b[:len(s)]) != s {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// str consumes a JSON string that decodes to its own bytes: no escape, no control character,
// valid UTF-8.
func (r *frameReader) str(out *string) bool {
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
		ru, size := utf8.DecodeRune(s[i:])
		if ru == utf8.RuneError && size == 1 {
			return false
		}
		i += size
	}
	*out = string(s)
	r.b = r.b[2+end:]
	return true
}

// uint consumes a JSON integer that fits a uint64: 0, or digits without a leading zero.
func (r *frameReader) uint(out *uint64) bool {
	n := 0
	for n < len(r.b) && r.b[n] >= '0' && r.b[n] <= '9' {
		n++
	}
	if n == 0 || r.b[0] == '0' && n > 1 {
		return false
	}
	if n < len(r.b) && (r.b[n] == '.' || r.b[n] == 'e' || r.b[n] == 'E') {
		return false
	}
	v, err := strconv.ParseUint(string(r.b[:n]), 10, 64)
	if err != nil {
		return false
	}
	*out, r.b = v, r.b[n:]
	return true
}
