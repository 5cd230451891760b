package streams

// Presence states.
const (
	Online  = "online"
	Offline = "offline"
)

// PresenceEvent is published by a gateway on presence.<user>.<device> when a device connects or
// its socket ends.
type PresenceEvent struct {
	V        int    `json:"v"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	State    string `json:"state"` // Online or Offline
	Gateway  string `json:"gateway"`
	Session  string `json:"session"` // the socket; an offline for an older session is ignored
	At       int64  `json:"at"`      // Unix milliseconds
}

// PresenceStatus is the value of a presence bucket entry (key: user id).
type PresenceStatus struct {
	Status   string `json:"status"`    // Online or Offline
	LastSeen int64  `json:"last_seen"` // Unix milliseconds: the latest connect or disconnect seen
	// Devices are the connected devices: device -> where its socket is.
	Devices map[string]DevicePresence `json:"devices,omitempty"`
}

// DevicePresence is one connected device of a PresenceStatus.
type DevicePresence struct {
	Gateway string `json:"gateway"`
	Session string `json:"session"`
	Since   int64  `json:"since"`
}

// TypingSubject is the core-NATS subject of typing indicators in one conversation: typing is
// ephemeral and never stored.
func TypingSubject(conversationID string) string { return "typing." + conversationID }

// TypingAll matches every conversation's typing subject.
const TypingAll = "typing.*"

// Typing is what a gateway publishes on typing.<conversation>.
type Typing struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	DeviceID       string `json:"device_id"`
	State          string `json:"state"` // "start" or "stop"
}
