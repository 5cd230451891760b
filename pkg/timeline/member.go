package timeline

import (
	"encoding/json"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

func encodeMember(c streams.MemberChange) []byte {
	b, _ := json.Marshal(c) // a struct of strings cannot fail to marshal
	return b
}

// DecodeMember reads the membership change stored with a member event; nil if there is none.
func DecodeMember(raw []byte) *streams.MemberChange {
	if len(raw) == 0 {
		return nil
	}
	var c streams.MemberChange
	if json.Unmarshal(raw, &c) != nil {
		return nil
	}
	return &c
}

// Event is the client-facing frame of a stored timeline event: the same JSON a device receives
// live, so history pages and live delivery look alike.
func Event(m store.Message) protocol.Event {
	typ := protocol.TypeMessage
	if m.Kind == streams.KindMember {
		typ = protocol.TypeMember
	}
	return protocol.Event{
		Type: typ, Seq: m.Seq, ConversationID: m.ConversationID, MessageID: m.ID,
		SenderID: m.SenderID, SenderDevice: m.SenderDevice, ClientMsgID: m.ClientMsgID,
		Text: m.Text, SentAt: m.SentAt.UnixMilli(), Member: DecodeMember(m.Member),
	}
}
