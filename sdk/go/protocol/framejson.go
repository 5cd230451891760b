package protocol

import "github.com/natter-chat/natter/sdk/go/protocol/flatjson"

// decodeFrameFast reads data when it is a flat JSON object in the shape clients write (no
// whitespace, keys spelled exactly as ClientFrame's tags, strings without escapes, no
// user_ids) and returns what json.Unmarshal would; ok is false for anything else, which
// json.Unmarshal then reads (FuzzDecodeFrameFast holds it to that). Every send passes through
// here: this is the shape nearly all of them have, at a fraction of json.Unmarshal's cost.
func decodeFrameFast(data []byte) (f ClientFrame, ok bool) {
	r := flatjson.Reader{B: data}
	if !r.Lit("{") {
		return ClientFrame{}, false
	}
	for first := true; !r.Lit("}"); first = false {
		if !first && !r.Lit(",") || !readField(&r, &f) {
			return ClientFrame{}, false
		}
	}
	if len(r.B) != 0 {
		return ClientFrame{}, false
	}
	return f, true
}

// readField consumes one "key":value pair into f; a later pair of the same key overwrites it, as
// with json.Unmarshal.
func readField(r *flatjson.Reader, f *ClientFrame) bool {
	var key string
	if !r.Str(&key) || !r.Lit(":") {
		return false
	}
	switch key {
	case "type":
		return r.Str(&f.Type)
	case "id":
		return r.Str(&f.ID)
	case "client_msg_id":
		return r.Str(&f.ClientMsgID)
	case "conversation_id":
		return r.Str(&f.ConversationID)
	case "text":
		return r.Str(&f.Text)
	case "state":
		return r.Str(&f.State)
	case "for":
		return r.Str(&f.For)
	case "token":
		return r.Str(&f.Token)
	case "resend":
		switch {
		case r.Lit("true"):
			f.Resend = true
		case r.Lit("false"):
			f.Resend = false
		default:
			return false
		}
		return true
	case "up_to":
		return r.Uint(&f.UpTo)
	case "target_seq":
		return r.Uint(&f.TargetSeq)
	}
	return false // user_ids, a key in another spelling, or one ClientFrame does not have
}
