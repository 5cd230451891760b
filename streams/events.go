package streams

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Version is the envelope version this package writes and reads. A consumer that meets a higher
// version terminates the message rather than guess at it.
const Version = 1

// ChatEvent is the envelope of every event on chat.<conversation>.<kind>. Its position (seq) is
// not inside it: seq is the CHAT stream sequence, read from the message metadata.
type ChatEvent struct {
	V              int    `json:"v"`
	Kind           string `json:"kind"`
	ConversationID string `json:"conversation_id"`
	// MessageID is a ULID that names the event for references (replies, receipts, jumps).
	MessageID    string `json:"message_id"`
	SenderID     string `json:"sender_id"`
	SenderDevice string `json:"sender_device,omitempty"`
	// ClientMsgID is the sender's idempotency key; (SenderID, ClientMsgID) names one message forever.
	ClientMsgID string `json:"client_msg_id,omitempty"`
	Text        string `json:"text,omitempty"`
	// SentAt is when the gateway accepted the send, in Unix milliseconds.
	SentAt int64 `json:"sent_at"`
	// Member describes a membership change when Kind is KindMember.
	Member *MemberChange `json:"member,omitempty"`
	// UpTo is the watermark of a receipt (KindRead, KindDelivered): every event of the
	// conversation up to this seq has been read or delivered by SenderID.
	UpTo uint64 `json:"up_to,omitempty"`
	// Target names the message an edit, delete or hide (KindEdit, KindDelete, KindHide)
	// revises. An edit's new text is Text.
	Target *Target `json:"target,omitempty"`
}

// Target is the body of a KindEdit, KindDelete or KindHide event: the message it revises, by
// its seq and its message id, in the event's conversation. Client frames carry it as it is.
type Target = protocol.Target

// Revises reports whether kind revises an earlier message: KindEdit, KindDelete or KindHide.
func Revises(kind string) bool {
	return kind == KindEdit || kind == KindDelete || kind == KindHide
}

// Membership actions carried by KindMember events. SenderID is who made the change.
const (
	MemberCreated = "created" // the group is created; SenderID is its owner, UserIDs its members
	MemberAdded   = "added"   // UserIDs become members (directly, without an invitation)
	MemberRemoved = "removed" // UserIDs are removed by an owner or admin
	MemberLeft    = "left"    // UserIDs (the sender) leave
	MemberRenamed = "renamed" // the group is named Name
	// MemberInvited: UserIDs are invited; each becomes a member only by accepting.
	MemberInvited = "invited"
	// MemberAccepted and MemberDeclined: the invitee (the sender, UserIDs) answers. An admin
	// withdrawing an invitation is a MemberDeclined sent by the admin.
	MemberAccepted = "accepted"
	MemberDeclined = "declined"
	MemberPromoted = "promoted" // UserIDs become admins
	MemberDemoted  = "demoted"  // UserIDs become plain members
	// MemberOwnerChanged: Owner becomes the owner; the previous owner, if still a member, an admin.
	MemberOwnerChanged = "owner_changed"
	// MemberDeleted: the group is deleted by its owner; every membership and invitation ends here.
	MemberDeleted = "deleted"
)

// MemberChange is the body of a KindMember event. Client frames carry it as it is.
type MemberChange = protocol.MemberChange

// ErrVersion means an envelope is from a newer or unknown contract version.
var ErrVersion = errors.New("unsupported envelope version")

// DecodeChatEvent parses and checks a chat envelope.
func DecodeChatEvent(data []byte) (ChatEvent, error) {
	ev, ok := decodeChatFast(data)
	if !ok {
		if err := json.Unmarshal(data, &ev); err != nil {
			return ChatEvent{}, fmt.Errorf("decode chat event: %w", err)
		}
	}
	if ev.V != Version {
		return ChatEvent{}, fmt.Errorf("decode chat event v%d: %w", ev.V, ErrVersion)
	}
	if ev.Kind == "" || ev.ConversationID == "" || ev.MessageID == "" {
		return ChatEvent{}, errors.New("decode chat event: kind, conversation_id and message_id are required")
	}
	if Revises(ev.Kind) && (ev.Target == nil || ev.Target.Seq == 0 || ev.Target.MessageID == "") {
		return ChatEvent{}, fmt.Errorf("decode chat event: a %s needs a target with seq and message_id", ev.Kind)
	}
	return ev, nil
}

// Encode marshals the event with the current version: byte for byte what json.Marshal writes
// (FuzzChatEventEncode holds it to that), without reflection for the fields every message has.
func (ev ChatEvent) Encode() ([]byte, error) {
	ev.V = Version
	// Room for the names, quotes and numbers, and the strings unescaped: one allocation.
	n := 160 + len(ev.Kind) + len(ev.ConversationID) + len(ev.MessageID) + len(ev.SenderID) +
		len(ev.SenderDevice) + len(ev.ClientMsgID) + len(ev.Text)
	return ev.appendJSON(make([]byte, 0, n))
}

// Delivery is what fanout (and presence) publish on gw.<id>.deliver: the users on that gateway
// whose connected devices must receive it, and either one timeline event (Seq set) as its
// ready-made client frame, built once by fanout for every gateway, or (Seq zero, Frame set) a
// client frame outside the timeline (receipts, typing, presence), or (Resync set) word that the
// gateway's next events do not follow on from its last ones: events below ResyncBelow may come
// later than newer ones, or not at all. The gateway passes frames on as they are. On a resync
// it closes with the resync code, before anything later reaches them, every socket that has
// not been caught up to ResyncBelow-1 already (all of them when ResyncBelow is 0), and each
// such device catches up from its cursor.
type Delivery struct {
	Seq          uint64          `json:"seq,omitempty"`
	Conversation string          `json:"conv,omitempty"` // a timeline event's conversation
	Users        []string        `json:"users"`
	Frame        json.RawMessage `json:"frame,omitempty"`
	Resync       bool            `json:"resync,omitempty"`
	ResyncBelow  uint64          `json:"resync_below,omitempty"`
	// Chain and N number the timeline deliveries, resyncs and end that one run of a fanout
	// partition publishes to one gateway: 1, 2, 3, … under a random chain id of that run.
	// Deliveries are core NATS: a NATS node or connection that fails loses what was in flight
	// through it, and two runs' deliveries can overtake each other. A gateway that finds a
	// number skipped, or a new chain before the last one's end, treats the delivery as if a
	// resync below its Seq came first. Zero Chain: not numbered (frames outside the timeline).
	Chain uint64 `json:"chain,omitempty"`
	N     uint64 `json:"n,omitempty"`
	// End closes a chain: its run stopped after handling and acknowledging every event below
	// Seq, and sent everything it had for this gateway before.
	End bool `json:"end,omitempty"`
}

// Route is the value of a routes bucket entry: which gateway holds a device's socket.
type Route struct {
	Gateway string `json:"gateway"`
	// Conn names the socket on that gateway, so a stale close cannot delete a newer route.
	Conn string `json:"conn"`
	// Since is when the device connected, in Unix milliseconds.
	Since int64 `json:"since"`
}

// GatewayInfo is the value of a gateways bucket entry, refreshed by the live gateway.
type GatewayInfo struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Connections int    `json:"connections"`
	// Updated is the refresh time in Unix milliseconds.
	Updated int64 `json:"updated"`
}

// EventFromChat turns a CHAT event at seq into the frame devices receive.
func EventFromChat(seq uint64, ev ChatEvent) protocol.Event {
	e := protocol.Event{
		Type: protocol.TypeMessage, Seq: seq, ConversationID: ev.ConversationID, MessageID: ev.MessageID,
		SenderID: ev.SenderID, SenderDevice: ev.SenderDevice, ClientMsgID: ev.ClientMsgID,
		Text: ev.Text, SentAt: ev.SentAt, Member: ev.Member, Target: ev.Target,
	}
	switch ev.Kind {
	case KindMember:
		e.Type = protocol.TypeMember
	case KindEdit:
		e.Type, e.EditedAt = protocol.TypeEdit, ev.SentAt
	case KindDelete:
		e.Type, e.Deleted, e.Text = protocol.TypeDelete, true, ""
	case KindHide:
		e.Type, e.Deleted, e.Text = protocol.TypeHide, true, ""
	}
	return e
}
