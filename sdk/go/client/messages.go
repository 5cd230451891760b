package client

import "github.com/natter-chat/natter/sdk/go/protocol"

// Message is what a device shows of one message: its latest text, or a tombstone.
type Message struct {
	ConversationID string
	SenderID       string
	Text           string // empty once Deleted
	EditedAt       int64  // Unix milliseconds; 0 if never edited
	Deleted        bool   // deleted for everyone, or by this user for themselves
}

// Messages is a device's view of the messages it received, by seq. Apply every event in the
// order it arrives, live and synced alike, and the view ends where the server's history does:
// every message with its latest text, or deleted.
type Messages map[uint64]Message

// Apply folds one event into the view: a message is added (as it is now: edited or deleted
// already if it was), an edit replaces its target's text, a delete or hide makes its target a
// tombstone. A deletion is final: nothing brings a deleted message's text back.
func (ms Messages) Apply(ev Event) {
	switch ev.Type {
	case protocol.TypeMessage:
		if old, ok := ms[ev.Seq]; ok && old.Deleted {
			return
		}
		ms[ev.Seq] = Message{ConversationID: ev.ConversationID, SenderID: ev.SenderID, Text: ev.Text, EditedAt: ev.EditedAt, Deleted: ev.Deleted}
	case protocol.TypeEdit, protocol.TypeDelete, protocol.TypeHide:
		if ev.Target == nil {
			return
		}
		m, ok := ms[ev.Target.Seq]
		if !ok {
			// Not received here (older than this device's cursor): what it is now is all there
			// is to show of it.
			m = Message{ConversationID: ev.ConversationID}
		}
		if m.Deleted {
			return
		}
		switch {
		case ev.Deleted:
			m.Text, m.Deleted = "", true
		default:
			m.Text, m.EditedAt = ev.Text, ev.EditedAt
		}
		ms[ev.Target.Seq] = m
	}
}
