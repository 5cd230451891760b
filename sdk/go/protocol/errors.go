package protocol

import "fmt"

// Code is a machine-readable error code carried by error frames and HTTP error bodies.
type Code string

// Error codes. A client may retry after CodeUnavailable, CodeRateLimited and CodeInternal (the
// same client_msg_id keeps a retried send idempotent); the others need a different request.
const (
	CodeInvalidJSON   Code = "invalid_json"    // not one JSON object
	CodeInvalidUTF8   Code = "invalid_utf8"    // bytes that are not UTF-8, or a lone surrogate escape
	CodeInvalidFrame  Code = "invalid_frame"   // a field missing or malformed
	CodeUnknownType   Code = "unknown_type"    // a type this server does not know
	CodeFrameTooLarge Code = "frame_too_large" // over MaxFrameBytes
	CodeTextEmpty     Code = "text_empty"      // send with no text
	CodeTextTooLong   Code = "text_too_long"   // over MaxTextRunes code points
	CodeNotMember     Code = "not_member"      // not a member, or no such conversation (indistinguishable)
	CodeRateLimited   Code = "rate_limited"    // too many frames; slow down
	CodeUnauthorized  Code = "unauthorized"    // an auth frame's token was refused, or is of another login session
	CodeUnavailable   Code = "unavailable"     // the event bus did not answer in time; retry
	CodeInternal      Code = "internal"        // a server fault; retry later
	// Edits and deletes.
	CodeMessageNotFound Code = "message_not_found" // target_seq names no message of the conversation the member may see
	CodeNotAllowed      Code = "not_allowed"       // the message is not yours (edit), or you may not delete it for everyone
	CodeEditExpired     Code = "edit_expired"      // the edit window of the message has passed
	CodeMessageDeleted  Code = "message_deleted"   // the message was deleted for everyone: it cannot be edited
)

// Error is an error frame; it also serves as a Go error.
type Error struct {
	Type    string `json:"type"` // always "error"
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Ref names what failed: the frame's id, else its client_msg_id.
	Ref string `json:"ref,omitempty"`
}

// Errorf builds an error frame.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Type: TypeError, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// WithRef returns a copy of e naming ref.
func (e *Error) WithRef(ref string) *Error {
	c := *e
	c.Ref = ref
	return &c
}

// CloseCode is a WebSocket close status natter uses. 4000-4099: reconnect (with backoff and
// jitter) and sync from your cursor. 4400-4499: do not reconnect until something changes.
type CloseCode int

const (
	CloseShutdown         CloseCode = 4000 // server going away; reconnect (discovery may name another gateway)
	CloseSlowConsumer     CloseCode = 4001 // the send queue overflowed; reconnect and sync
	CloseHeartbeatTimeout CloseCode = 4002 // no pong in time; reconnect
	CloseResync           CloseCode = 4003 // the server may have missed events for you; reconnect and sync
	CloseInternal         CloseCode = 4004 // server fault; reconnect with backoff
	CloseUnauthorized     CloseCode = 4401 // token invalid or expired; log in again, then reconnect
	CloseSessionEnded     CloseCode = 4403 // the login session ended (logout, revoked, refresh token reused); log in again
	CloseReplaced         CloseCode = 4409 // a newer connection of this device took over; do not reconnect
	ClosePolicy           CloseCode = 4400 // the client broke the protocol badly; fix it
)

// Reconnect reports whether a client should reconnect after this close code.
func (c CloseCode) Reconnect() bool { return c >= 4000 && c < 4100 }
