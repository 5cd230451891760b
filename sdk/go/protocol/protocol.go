// Package protocol is natter's WebSocket protocol, version 1: the frames, their validation, the
// error codes and the close codes. docs/protocol.md is its prose twin; keep them together.
//
// Every frame is one JSON object in one WebSocket message with a "type" field. Decoding is
// strict about what could hurt (invalid UTF-8, lone surrogates, oversize, bad ids, too-long text)
// and lenient about the rest (unknown fields are ignored so clients may be newer than the server).
//
// It is the contract leaf that clients and servers share: it imports only the standard library
// (test/sdk checks), so that the Go SDK's module needs no server dependency. What turns server
// state into frames lives server-side (streams.EventFromChat), importing this package.
package protocol

// Version is the protocol version served at /v1/ws.
const Version = 1

// Limits.
const (
	// MaxTextRunes is the most Unicode code points a message text may have.
	MaxTextRunes = 100_000
	// MaxFrameBytes is the largest client frame read: room for MaxTextRunes characters each
	// escaped as a \uXXXX\uXXXX surrogate pair (12 bytes, as JSON encoders that escape non-ASCII
	// write emoji) plus the envelope. Larger frames are drained and answered with
	// CodeFrameTooLarge; the connection stays open.
	MaxFrameBytes = 1_300_000
	// HardFrameBytes is the size beyond which the connection is closed (1009) instead of drained.
	HardFrameBytes = 16 << 20
	// MaxIDBytes bounds every id (ValidID): client-chosen ones (client_msg_id, device id) too.
	MaxIDBytes = 64
)

// Client -> server frame types.
const (
	TypeSend      = "send"
	TypePing      = "ping"
	TypeRead      = "read"      // read watermark: every event up to up_to is read
	TypeDelivered = "delivered" // delivered watermark: every event up to up_to reached this device
	TypeTyping    = "typing"    // typing indicator, state "start" or "stop" (also server -> client)
	TypePresence  = "presence"  // ask for users' presence (also server -> client: the answer, or a change)
	TypeAuth      = "auth"      // a fresh access token for this socket (also server -> client: the answer)
	TypeEdit      = "edit"      // replace the text of your message target_seq (also server -> client)
	TypeDelete    = "delete"    // delete message target_seq, for everyone or ("for":"me") for yourself (also server -> client)
)

// Who a delete is for.
const (
	DeleteForEveryone = "everyone"
	DeleteForMe       = "me"
)

// Typing states, and how long a client shows an indicator no "stop" ended.
const (
	TypingStart   = "start"
	TypingStop    = "stop"
	TypingExpires = 6000 // milliseconds
	// MaxPresenceQuery is the most users one presence request may name.
	MaxPresenceQuery = 100
)

// Server -> client frame types.
const (
	TypeWelcome = "welcome"
	TypeAck     = "ack"
	TypeMessage = "message"
	TypeMember  = "member"
	TypeSynced  = "synced"
	TypeError   = "error"
	TypePong    = "pong"
	TypeReceipt = "receipt"
	// TypeHide is a delete for me: sent only to the devices of the user who deleted.
	TypeHide = "hide"
	// TypeRequest: a direct request was made to or by this user, or answered (RequestNotice).
	TypeRequest = "request"
)

// RequestNotice tells a user's connected devices, live, that a direct conversation was
// requested (State "open": to the requester's devices and the recipient's), accepted
// ("accepted": both) or ignored ("ignored": the recipient's devices only). It is not part of
// any timeline: it has no seq, sync does not replay it, and a device that was not connected
// reads the requests from the conversation list (GET /v1/conversations) when it connects.
type RequestNotice struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	From           string `json:"from"`  // who asked
	To             string `json:"to"`    // who is asked
	State          string `json:"state"` // open, accepted or ignored
	At             int64  `json:"at"`    // when, in Unix milliseconds
}

// ClientFrame is any frame a client sends; Type says which fields apply.
type ClientFrame struct {
	Type string `json:"type"`
	// ID is an optional client-chosen request id echoed as "ref" in the answer to this frame.
	ID string `json:"id,omitempty"`

	// send
	ClientMsgID    string `json:"client_msg_id,omitempty"`
	ConversationID string `json:"conversation_id,omitempty"`
	Text           string `json:"text,omitempty"`
	// Resend marks a send whose client_msg_id may have been sent before (a retry, or an id the
	// caller chose). The gateway then looks the id up in the store and in the stream, so that the
	// result is one message however long ago the first attempt was; without it, only JetStream's
	// duplicate window (15 seconds by default) catches a repeated id.
	Resend bool `json:"resend,omitempty"`

	// read, delivered: the watermark
	UpTo uint64 `json:"up_to,omitempty"`
	// typing: "start" or "stop"
	State string `json:"state,omitempty"`
	// presence: whose presence to tell
	UserIDs []string `json:"user_ids,omitempty"`

	// edit, delete: the seq of the message to edit or delete (client_msg_id, conversation_id
	// and, for an edit, text as for a send)
	TargetSeq uint64 `json:"target_seq,omitempty"`
	// delete: DeleteForEveryone (the default) or DeleteForMe
	For string `json:"for,omitempty"`
	// auth: an access token of the socket's own login session, renewing the socket past the
	// expiry of the token it connected with.
	Token string `json:"token,omitempty"`
}

// MaxTokenBytes bounds the access token of an auth frame (natter's are about 300 bytes).
const MaxTokenBytes = 4096

// Auth answers an auth frame: the socket now lives until ExpiresAt (Unix milliseconds), the
// expiry of the token it carried.
type Auth struct {
	Type      string `json:"type"`
	Ref       string `json:"ref,omitempty"`
	ExpiresAt int64  `json:"expires_at"`
}

// Receipt tells that UserID has read (Kind "read") or received (Kind "delivered") every event of
// the conversation up to UpTo. Watermarks only move forward; ignore a smaller one.
type Receipt struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	DeviceID       string `json:"device_id,omitempty"`
	Kind           string `json:"kind"`
	UpTo           uint64 `json:"up_to"`
}

// Typing tells that UserID started or stopped typing. A "start" lapses after ExpiresInMS unless
// repeated.
type Typing struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	State          string `json:"state"`
	ExpiresInMS    int    `json:"expires_in_ms"`
}

// Presence answers a presence request (Ref set) or announces a change of one user.
type Presence struct {
	Type  string       `json:"type"`
	Ref   string       `json:"ref,omitempty"`
	Users []UserStatus `json:"users"`
}

// UserStatus is one user's presence: "online", "offline", or "unknown" for a user who shares no
// conversation with the asker (or does not exist).
type UserStatus struct {
	UserID   string `json:"user_id"`
	Status   string `json:"status"`
	LastSeen int64  `json:"last_seen,omitempty"` // Unix milliseconds
}

// Welcome is the first frame on every connection.
type Welcome struct {
	Type        string `json:"type"`
	Protocol    int    `json:"protocol"`
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	SessionID   string `json:"session_id"`
	HeartbeatMS int64  `json:"heartbeat_ms"`
	// Syncing is true when the connection asked for catch-up (cursor given): missed events follow,
	// then a Synced frame, then live events.
	Syncing bool `json:"syncing"`
	// ExpiresAt (Unix milliseconds) is when the server closes this socket with
	// CloseUnauthorized, the expiry of its access token, unless an auth frame renews it first.
	ExpiresAt int64 `json:"expires_at"`
	// EditWindowMS is how long after sending a message its sender may edit it, in milliseconds;
	// 0: no limit. Clients use it to offer an edit only while the server would accept it.
	EditWindowMS int64 `json:"edit_window_ms"`
}

// Ack answers a send (and an edit or delete): the event exists, durably, at Seq. A retry of the same client_msg_id gets
// the same ack (same message_id and seq), with Duplicate set.
type Ack struct {
	Type           string `json:"type"`
	Ref            string `json:"ref,omitempty"`
	ClientMsgID    string `json:"client_msg_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Seq            uint64 `json:"seq"`
	SentAt         int64  `json:"sent_at"`
	Duplicate      bool   `json:"duplicate,omitempty"`
}

// Event is a conversation event delivered to a device: a message (Type "message"), a
// membership change (Type "member"), or an edit, delete or hide of an earlier message (Type
// "edit", "delete", "hide"; Target names it). Seq orders the events of one conversation.
//
// A message carries its latest state: EditedAt is set once it was edited, Deleted once it was
// deleted for everyone (or, for the user who did it, for them), and then Text is empty. A
// revision carries the state it leaves its target in: an edit its text and EditedAt (or
// Deleted, without text, if the target was deleted since), a delete or hide Deleted. Apply it
// to the target unless the target is deleted already: a deletion is final.
type Event struct {
	Type           string        `json:"type"`
	Seq            uint64        `json:"seq"`
	ConversationID string        `json:"conversation_id"`
	MessageID      string        `json:"message_id"`
	SenderID       string        `json:"sender_id"`
	SenderDevice   string        `json:"sender_device,omitempty"`
	ClientMsgID    string        `json:"client_msg_id,omitempty"`
	Text           string        `json:"text,omitempty"`
	SentAt         int64         `json:"sent_at"`
	Member         *MemberChange `json:"member,omitempty"`
	Target         *Target       `json:"target,omitempty"`
	EditedAt       int64         `json:"edited_at,omitempty"` // Unix milliseconds
	Deleted        bool          `json:"deleted,omitempty"`
}

// Synced ends catch-up: every event up to Cursor of the device's conversations has been sent.
type Synced struct {
	Type   string `json:"type"`
	Cursor uint64 `json:"cursor"`
}

// Pong answers a ping.
type Pong struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
}
