package streams

import (
	"strconv"

	"github.com/natter-chat/natter/sdk/go/protocol/flatjson"
)

// appendJSON appends ev's JSON, as json.Marshal writes it, to b. The member and target bodies,
// rare, are json.Marshal's.
func (ev ChatEvent) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(ev.V), 10)
	b = flatjson.AppendMember(b, `,"kind":`, ev.Kind)
	b = flatjson.AppendMember(b, `,"conversation_id":`, ev.ConversationID)
	b = flatjson.AppendMember(b, `,"message_id":`, ev.MessageID)
	b = flatjson.AppendMember(b, `,"sender_id":`, ev.SenderID)
	if ev.SenderDevice != "" {
		b = flatjson.AppendMember(b, `,"sender_device":`, ev.SenderDevice)
	}
	if ev.ClientMsgID != "" {
		b = flatjson.AppendMember(b, `,"client_msg_id":`, ev.ClientMsgID)
	}
	if ev.Text != "" {
		b = flatjson.AppendMember(b, `,"text":`, ev.Text)
	}
	b = append(b, `,"sent_at":`...)
	b = strconv.AppendInt(b, ev.SentAt, 10)
	var err error
	if ev.Member != nil {
		if b, err = flatjson.AppendMarshal(b, `,"member":`, ev.Member); err != nil {
			return nil, err
		}
	}
	if ev.UpTo != 0 {
		b = append(b, `,"up_to":`...)
		b = strconv.AppendUint(b, ev.UpTo, 10)
	}
	if ev.Target != nil {
		if b, err = flatjson.AppendMarshal(b, `,"target":`, ev.Target); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

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
