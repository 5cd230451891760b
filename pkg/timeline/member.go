package timeline

import (
	"encoding/json"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
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

// Event is the client-facing frame of a stored timeline event: the frame of the CHAT event it
// was stored from (streams.EventFromChat, the one converter), so history, sync and live
// delivery look alike.
//
// A message carries its latest state (EditedAt, Deleted); a revision the state it left its
// target in (see protocol.Event). Pass what a user reads through View first.
func Event(m store.Message) protocol.Event {
	ev := streams.ChatEvent{
		V: streams.Version, Kind: m.Kind, ConversationID: m.ConversationID, MessageID: m.ID,
		SenderID: m.SenderID, SenderDevice: m.SenderDevice, ClientMsgID: m.ClientMsgID,
		Text: m.Text, SentAt: m.SentAt.UnixMilli(), Member: DecodeMember(m.Member),
	}
	if m.Target != 0 {
		ev.Target = &streams.Target{Seq: m.Target, MessageID: m.TargetID}
	}
	e := streams.EventFromChat(m.Seq, ev)
	if !m.EditedAt.IsZero() {
		e.EditedAt = m.EditedAt.UnixMilli()
	}
	if m.Deleted() {
		e.Text, e.Deleted = "", true
	}
	return e
}
