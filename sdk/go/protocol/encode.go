package protocol

import (
	"strconv"

	"github.com/natter-chat/natter/sdk/go/protocol/flatjson"
)

// AppendJSON appends e's JSON to b: byte for byte what json.Marshal(e) writes (FuzzEventJSON
// holds it to that), at a fraction of its cost. Servers encode an event once for every device
// that gets it live, and once for every event of a catch-up, where json.Marshal was 44 % of the
// gateway's CPU.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	b = flatjson.AppendMember(b, `{"type":`, e.Type)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = flatjson.AppendMember(b, `,"conversation_id":`, e.ConversationID)
	b = flatjson.AppendMember(b, `,"message_id":`, e.MessageID)
	b = flatjson.AppendMember(b, `,"sender_id":`, e.SenderID)
	if e.SenderDevice != "" {
		b = flatjson.AppendMember(b, `,"sender_device":`, e.SenderDevice)
	}
	if e.ClientMsgID != "" {
		b = flatjson.AppendMember(b, `,"client_msg_id":`, e.ClientMsgID)
	}
	if e.Text != "" {
		b = flatjson.AppendMember(b, `,"text":`, e.Text)
	}
	b = append(b, `,"sent_at":`...)
	b = strconv.AppendInt(b, e.SentAt, 10)
	var err error
	if e.Member != nil { // member events and revisions are rare: json writes their bodies
		if b, err = flatjson.AppendMarshal(b, `,"member":`, e.Member); err != nil {
			return nil, err
		}
	}
	if e.Target != nil {
		if b, err = flatjson.AppendMarshal(b, `,"target":`, e.Target); err != nil {
			return nil, err
		}
	}
	if e.EditedAt != 0 {
		b = append(b, `,"edited_at":`...)
		b = strconv.AppendInt(b, e.EditedAt, 10)
	}
	if e.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	return append(b, '}'), nil
}

// AppendJSON appends a's JSON to b: byte for byte what json.Marshal(a) writes (FuzzAckJSON holds
// it to that). A gateway writes one for every send it accepts.
func (a *Ack) AppendJSON(b []byte) []byte {
	b = flatjson.AppendMember(b, `{"type":`, a.Type)
	if a.Ref != "" {
		b = flatjson.AppendMember(b, `,"ref":`, a.Ref)
	}
	b = flatjson.AppendMember(b, `,"client_msg_id":`, a.ClientMsgID)
	b = flatjson.AppendMember(b, `,"conversation_id":`, a.ConversationID)
	b = flatjson.AppendMember(b, `,"message_id":`, a.MessageID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, a.Seq, 10)
	b = append(b, `,"sent_at":`...)
	b = strconv.AppendInt(b, a.SentAt, 10)
	if a.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}
