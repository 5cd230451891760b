package streams

import "github.com/natter-chat/natter/sdk/go/protocol/flatjson"

// decodeChatFast reads data when it has exactly the shape ChatEvent.Encode writes (the fields in
// their order, no whitespace, strings without escapes, no member or target body) and returns
// what json.Unmarshal would; ok is false for anything else, which json.Unmarshal then reads
// (FuzzDecodeChatFast holds it to that). Every consumer of CHAT decodes every event: this is
// the shape nearly all of them have, at a fraction of json.Unmarshal's cost.
func decodeChatFast(data []byte) (ev ChatEvent, ok bool) {
	r := flatjson.Reader{B: data}
	var v int64
	if !r.Lit(`{"v":`) || !r.Int(&v) || !r.Lit(`,"kind":`) || !r.Str(&ev.Kind) ||
		!r.Lit(`,"conversation_id":`) || !r.Str(&ev.ConversationID) ||
		!r.Lit(`,"message_id":`) || !r.Str(&ev.MessageID) || !r.Lit(`,"sender_id":`) || !r.Str(&ev.SenderID) {
		return ChatEvent{}, false
	}
	ev.V = int(v)
	if r.Lit(`,"sender_device":`) && !r.Str(&ev.SenderDevice) ||
		r.Lit(`,"client_msg_id":`) && !r.Str(&ev.ClientMsgID) ||
		r.Lit(`,"text":`) && !r.Str(&ev.Text) ||
		!r.Lit(`,"sent_at":`) || !r.Int(&ev.SentAt) {
		return ChatEvent{}, false
	}
	if r.Lit(`,"up_to":`) && !r.Uint(&ev.UpTo) {
		return ChatEvent{}, false
	}
	if !r.Lit(`}`) || len(r.B) != 0 || int64(ev.V) != v {
		return ChatEvent{}, false
	}
	return ev, true
}
