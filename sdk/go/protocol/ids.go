package protocol

// ValidID reports whether s has the shape of a natter id: 1..MaxIDBytes bytes of [A-Za-z0-9_-].
// Every id in a frame (conversations, client message ids, users) and every id the server puts
// into a NATS subject or key (users, devices, conversations, gateways) must pass it, so that no
// client-chosen value can inject wildcards or extra subject tokens.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Handle limits: a handle is MinHandle-MaxHandle bytes of [a-z0-9_] once folded to lower case.
const (
	MinHandle = 3
	MaxHandle = 32
)

// ValidHandle reports whether h is a folded handle: MinHandle-MaxHandle bytes of [a-z0-9_]. The
// API folds ASCII capitals to lower case before it checks (and stores) a handle.
func ValidHandle(h string) bool {
	if len(h) < MinHandle || len(h) > MaxHandle {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		default:
			return false
		}
	}
	return true
}

// Target names the message an edit, delete or hide revises, by its seq and its message id, in
// the event's conversation.
type Target struct {
	Seq       uint64 `json:"seq"`
	MessageID string `json:"message_id"`
}

// MemberChange is the body of a member event: Action (docs/protocol.md lists them: created,
// added, removed, left, renamed, invited, accepted, declined, promoted, demoted, owner_changed,
// deleted; servers may add more) applied to UserIDs by the event's sender.
type MemberChange struct {
	Action  string   `json:"action"`
	UserIDs []string `json:"user_ids,omitempty"`
	Name    string   `json:"name,omitempty"`
	// Owner is the new owner: set by owner_changed, and by a left or removed event that takes
	// the owner out (the successor the API chose, so every replay makes the same one owner).
	Owner string `json:"owner,omitempty"`
}
