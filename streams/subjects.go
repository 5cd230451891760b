package streams

import (
	"strings"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Stream, bucket and durable consumer names.
const (
	ChatStream     = "CHAT"
	PresenceStream = "PRESENCE"
	PushStream     = "PUSH"

	RoutesBucket   = "routes"
	PresenceBucket = "presence"
	GatewaysBucket = "gateways"
	FanoutsBucket  = "fanouts"

	PersisterConsumer = "persister"
	FanoutConsumer    = "fanout"
	PresenceConsumer  = "presence"
	SearchConsumer    = "search"
)

// Event kinds carried on chat.<conversation>.<kind>.
const (
	KindMsg       = "msg"
	KindMember    = "member"
	KindRead      = "read"
	KindDelivered = "delivered"
	// KindEdit replaces the text of an earlier message (Target); KindDelete deletes one for
	// everyone; KindHide deletes one for its sender only. They are timeline events: they take a
	// seq in the one order of their conversation, like messages.
	KindEdit   = "edit"
	KindDelete = "delete"
	KindHide   = "hide"
)

// Header names natter sets on published events.
const (
	// HeaderMsgID is JetStream's de-duplication header; natter sets it to DedupeID(sender, clientMsgID).
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderVersion carries the envelope version so consumers can reject what they do not know.
	HeaderVersion = "Natter-Version"
	// VersionValue is Version as HeaderVersion carries it.
	VersionValue = "1"
)

// ChatSubject is the subject of one event kind in one conversation: chat.<conversation>.<kind>.
func ChatSubject(conversationID, kind string) string {
	return "chat." + conversationID + "." + kind
}

// ChatAll matches every event of every conversation.
const ChatAll = "chat.>"

// ChatMessages matches the messages of every conversation.
const ChatMessages = "chat.*.msg"

// ParseChatSubject splits chat.<conversation>.<kind>; ok is false for anything else.
func ParseChatSubject(subject string) (conversationID, kind string, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 3 || parts[0] != "chat" || parts[1] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// PresenceSubject is presence.<user>.<device>.
func PresenceSubject(userID, deviceID string) string {
	return "presence." + userID + "." + deviceID
}

// PushSubject is push.<user>.
func PushSubject(userID string) string { return "push." + userID }

// DeliverSubject is the core-NATS subject on which fanout hands a gateway the events for its sockets.
func DeliverSubject(gatewayID string) string { return "gw." + gatewayID + ".deliver" }

// SessionRevokedSubject is the core-NATS subject announcing that one session ended (logout, a
// revoked session, a reused refresh token): session.revoked.<user>.<session>, empty payload.
// The API publishes it after the store records the revocation; every gateway subscribes to
// SessionRevokedAll and closes the session's sockets.
func SessionRevokedSubject(userID, sessionID string) string {
	return "session.revoked." + userID + "." + sessionID
}

// SessionRevokedAll matches every session revocation.
const SessionRevokedAll = "session.revoked.>"

// ParseSessionRevokedSubject splits session.revoked.<user>.<session>; ok is false for anything
// else.
func ParseSessionRevokedSubject(subject string) (userID, sessionID string, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "session" || parts[1] != "revoked" || !ValidToken(parts[2]) || !ValidToken(parts[3]) {
		return "", "", false
	}
	return parts[2], parts[3], true
}

// AccountDeletedSubject is the core-NATS subject announcing that an account was deleted:
// account.deleted.<user>, empty payload. The API publishes it once the account_deleted event is
// on STATE; every gateway subscribes to AccountDeletedAll and closes the account's sockets, so
// gateways need no access to STATE's account events (which carry password hashes).
func AccountDeletedSubject(userID string) string { return "account.deleted." + userID }

// AccountDeletedAll matches every account deletion.
const AccountDeletedAll = "account.deleted.*"

// ParseAccountDeletedSubject returns the user of account.deleted.<user>; ok is false for
// anything else.
func ParseAccountDeletedSubject(subject string) (userID string, ok bool) {
	user, found := strings.CutPrefix(subject, "account.deleted.")
	return user, found && ValidToken(user)
}

// RouteKey is the routes bucket key of one connected device: <user>.<device>.
func RouteKey(userID, deviceID string) string { return userID + "." + deviceID }

// ParseRouteKey splits <user>.<device>.
func ParseRouteKey(key string) (userID, deviceID string, ok bool) {
	u, d, found := strings.Cut(key, ".")
	if !found || u == "" || d == "" || strings.Contains(d, ".") {
		return "", "", false
	}
	return u, d, true
}

// DedupeID is the JetStream message id of a client send: retries with the same client message id
// from the same sender collapse to one message inside the stream's duplicate window.
func DedupeID(senderID, clientMsgID string) string { return senderID + ":" + clientMsgID }

// ValidToken reports whether s can stand as one subject token and one KV key part: whether it has
// the shape of an id, protocol.ValidID (1..64 bytes of [A-Za-z0-9_-]). Every id that natter puts
// into a subject (users, devices, conversations, gateways) must pass it, so that no client-chosen
// value can inject wildcards or extra tokens.
func ValidToken(s string) bool { return protocol.ValidID(s) }
