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
	b = append(b, `{"type":`...)
	b = flatjson.AppendString(b, e.Type)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"conversation_id":`...)
	b = flatjson.AppendString(b, e.ConversationID)
	b = append(b, `,"message_id":`...)
	b = flatjson.AppendString(b, e.MessageID)
	b = append(b, `,"sender_id":`...)
	b = flatjson.AppendString(b, e.SenderID)
	if e.SenderDevice != "" {
		b = append(b, `,"sender_device":`...)
		b = flatjson.AppendString(b, e.SenderDevice)
	}
	if e.ClientMsgID != "" {
		b = append(b, `,"client_msg_id":`...)
		b = flatjson.AppendString(b, e.ClientMsgID)
	}
	if e.Text != "" {
		b = append(b, `,"text":`...)
		b = flatjson.AppendString(b, e.Text)
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
	b = append(b, `{"type":`...)
	b = flatjson.AppendString(b, a.Type)
	if a.Ref != "" {
		b = append(b, `,"ref":`...)
		b = flatjson.AppendString(b, a.Ref)
	}
	b = append(b, `,"client_msg_id":`...)
	b = flatjson.AppendString(b, a.ClientMsgID)
	b = append(b, `,"conversation_id":`...)
	b = flatjson.AppendString(b, a.ConversationID)
	b = append(b, `,"message_id":`...)
	b = flatjson.AppendString(b, a.MessageID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, a.Seq, 10)
	b = append(b, `,"sent_at":`...)
	b = strconv.AppendInt(b, a.SentAt, 10)
	if a.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}
