package streams

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// The STATE stream holds every change of natter's state that is not a conversation event:
// accounts, direct conversations, devices and push tokens. Together with CHAT (messages,
// group membership, receipts) it is the source of truth; the store is a projection of the two
// that pkg/projection rebuilds from them. Group creation, renames and membership changes are
// CHAT member events and are not repeated here; mute settings are the push_settings bucket,
// itself a JetStream stream.
//
// Subjects name the entity, so that the events of one entity are in one order and JetStream's
// expected-last-subject-sequence can guard them:
//
//	state.account.<handle>           account_created, profile_updated, account_deleted
//	state.direct.<conversation>      direct_opened
//	state.device.<user>.<device>     device_registered, device_removed
//	state.push.<user>.<device>       push_token_set, push_token_removed
//	state.block.<user>.<other>       user_blocked, user_unblocked
//	state.privacy.<user>             presence_visibility_set
//
// A direct conversation's subject also carries its consent: direct_opened with request set
// (the other user has not agreed yet), then direct_accepted or direct_ignored by that user.
// Consent, blocks and privacy settings are not in the store: pkg/consent keeps them in memory,
// read from the last event of each of these subjects.
//
// An account's subject is its handle: sign-up publishes account_created with expected last
// subject sequence 0, so a handle is taken at most once, atomically, by any number of API
// instances; and since the events of a deleted account stay on the subject, a deleted
// account's handle is never given to anyone else.
const (
	StateStream = "STATE"
	// StateAll matches every state event.
	StateAll = "state.>"
	// ProjectorConsumer is the durable consumer on STATE that applies state events to the
	// store, and the one on CHAT (member events only) that applies membership changes.
	ProjectorConsumer = "projector"
	// ChatMembers matches the member events of every conversation.
	ChatMembers = "chat.*.member"
)

// State event kinds.
const (
	StateAccountCreated   = "account_created"
	StateProfileUpdated   = "profile_updated"
	StateAccountDeleted   = "account_deleted"
	StateDirectOpened     = "direct_opened"
	StateDeviceRegistered = "device_registered"
	StateDeviceRemoved    = "device_removed"
	StatePushTokenSet     = "push_token_set"
	StatePushTokenRemoved = "push_token_removed"
	StateDirectAccepted   = "direct_accepted"
	StateDirectIgnored    = "direct_ignored"
	StateUserBlocked      = "user_blocked"
	StateUserUnblocked    = "user_unblocked"
	StatePresenceSet      = "presence_visibility_set"
)

// Presence visibility settings (PrivacyState.Presence): who may see a user's online status
// and last seen.
const (
	// PresenceEveryone: everyone who shares a conversation with the user (the default).
	PresenceEveryone = "everyone"
	// PresenceContacts: only the users of the user's accepted direct conversations.
	PresenceContacts = "contacts"
	// PresenceNobody: no one.
	PresenceNobody = "nobody"
)

// ValidPresenceVisibility reports whether v is one of the presence visibility settings.
func ValidPresenceVisibility(v string) bool {
	return v == PresenceEveryone || v == PresenceContacts || v == PresenceNobody
}

// StateEvent is the envelope of every event on STATE. Exactly the body its kind needs is set:
// Account for account_*, profile_updated; Direct for direct_*; Device for device_*;
// PushToken for push_token_*; Block for user_blocked, user_unblocked; Privacy for
// presence_visibility_set. Its position (seq) is the STATE stream sequence.
type StateEvent struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
	// At is when the change was made, in Unix milliseconds.
	At        int64           `json:"at"`
	Account   *AccountState   `json:"account,omitempty"`
	Direct    *DirectState    `json:"direct,omitempty"`
	Device    *DeviceState    `json:"device,omitempty"`
	PushToken *PushTokenState `json:"push_token,omitempty"`
	Block     *BlockState     `json:"block,omitempty"`
	Privacy   *PrivacyState   `json:"privacy,omitempty"`
}

// AccountState is the body of an account event. account_created carries every field (the
// password only as its bcrypt hash); profile_updated the display name; account_deleted only
// the ids.
type AccountState struct {
	UserID       string `json:"user_id"`
	Handle       string `json:"handle"`
	DisplayName  string `json:"display_name,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
}

// DirectState is the body of the direct_* events. direct_opened: the two users, both members
// from the start, and who opened it; Request is set when the other user must accept it first
// (events written before consent existed lack it: those conversations count as accepted).
// direct_accepted and direct_ignored: the two users and By, the one asked, who answered.
type DirectState struct {
	ConversationID string   `json:"conversation_id"`
	UserIDs        []string `json:"user_ids"`
	CreatedBy      string   `json:"created_by,omitempty"`
	Request        bool     `json:"request,omitempty"`
	By             string   `json:"by,omitempty"`
}

// BlockState is the body of user_blocked and user_unblocked: UserID blocks (or unblocks)
// BlockedID.
type BlockState struct {
	UserID    string `json:"user_id"`
	BlockedID string `json:"blocked_id"`
}

// PrivacyState is the body of presence_visibility_set.
type PrivacyState struct {
	UserID   string `json:"user_id"`
	Presence string `json:"presence"`
}

// DeviceState is the body of a device event.
type DeviceState struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Platform string `json:"platform,omitempty"`
}

// PushTokenState is the body of a push token event; push_token_removed carries only the ids.
type PushTokenState struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Platform string `json:"platform,omitempty"`
	Token    string `json:"token,omitempty"`
}

// AccountSubject is state.account.<handle>.
func AccountSubject(handle string) string { return "state.account." + handle }

// DirectSubject is state.direct.<conversation>.
func DirectSubject(conversationID string) string { return "state.direct." + conversationID }

// DeviceSubject is state.device.<user>.<device>.
func DeviceSubject(userID, deviceID string) string {
	return "state.device." + userID + "." + deviceID
}

// PushTokenSubject is state.push.<user>.<device>.
func PushTokenSubject(userID, deviceID string) string {
	return "state.push." + userID + "." + deviceID
}

// BlockSubject is state.block.<user>.<blocked>.
func BlockSubject(userID, blockedID string) string { return "state.block." + userID + "." + blockedID }

// PrivacySubject is state.privacy.<user>.
func PrivacySubject(userID string) string { return "state.privacy." + userID }

// ConsentSubjects are the STATE subjects pkg/consent follows: direct conversations (their
// consent), blocks and privacy settings. JetStream copies them into ConsentStream.
var ConsentSubjects = []string{"state.direct.>", "state.block.>", "state.privacy.>"}

// ConsentStream is the stream pkg/consent reads: the last event of each of STATE's
// ConsentSubjects, sourced from STATE, so that reading consent needs no access to STATE.
const ConsentStream = "CONSENT"

// Subject is the subject the event belongs on; empty if the event is not valid.
func (ev StateEvent) Subject() string {
	if ev.validate() != nil {
		return ""
	}
	switch {
	case ev.Account != nil:
		return AccountSubject(ev.Account.Handle)
	case ev.Direct != nil:
		return DirectSubject(ev.Direct.ConversationID)
	case ev.Device != nil:
		return DeviceSubject(ev.Device.UserID, ev.Device.DeviceID)
	case ev.Block != nil:
		return BlockSubject(ev.Block.UserID, ev.Block.BlockedID)
	case ev.Privacy != nil:
		return PrivacySubject(ev.Privacy.UserID)
	default:
		return PushTokenSubject(ev.PushToken.UserID, ev.PushToken.DeviceID)
	}
}

// Encode marshals the event with the current version.
func (ev StateEvent) Encode() ([]byte, error) {
	ev.V = Version
	if err := ev.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// DecodeStateEvent parses and checks a state event that arrived on subject: the version, the
// kind, the body its kind needs and nothing else, every id, and that subject is the one the
// event belongs on (so that no event escapes the guard of its subject).
func DecodeStateEvent(subject string, data []byte) (StateEvent, error) {
	var ev StateEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return StateEvent{}, fmt.Errorf("decode state event: %w", err)
	}
	if ev.V != Version {
		return StateEvent{}, fmt.Errorf("decode state event v%d: %w", ev.V, ErrVersion)
	}
	if err := ev.validate(); err != nil {
		return StateEvent{}, err
	}
	if want := ev.Subject(); subject != want {
		return StateEvent{}, fmt.Errorf("decode state event: %s event on %q, want %q", ev.Kind, truncated(subject), want)
	}
	return ev, nil
}

func truncated(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

var errStateBody = errors.New("decode state event: wrong body for its kind")

func (ev StateEvent) validate() error {
	bodies := 0
	for _, set := range []bool{ev.Account != nil, ev.Direct != nil, ev.Device != nil, ev.PushToken != nil, ev.Block != nil, ev.Privacy != nil} {
		if set {
			bodies++
		}
	}
	if bodies != 1 {
		return errStateBody
	}
	bad := func(what string) error { return fmt.Errorf("decode state event %s: %s", ev.Kind, what) }
	switch ev.Kind {
	case StateAccountCreated, StateProfileUpdated, StateAccountDeleted:
		a := ev.Account
		switch {
		case a == nil:
			return errStateBody
		case !ValidToken(a.UserID) || !protocol.ValidHandle(a.Handle):
			return bad("user_id and handle are required")
		case ev.Kind == StateAccountCreated && (a.DisplayName == "" || a.PasswordHash == ""):
			return bad("display_name and password_hash are required")
		case ev.Kind == StateProfileUpdated && (a.DisplayName == "" || a.PasswordHash != ""):
			return bad("display_name is required, and nothing else")
		case ev.Kind == StateAccountDeleted && (a.DisplayName != "" || a.PasswordHash != ""):
			return bad("only user_id and handle are allowed")
		}
	case StateDirectOpened, StateDirectAccepted, StateDirectIgnored:
		d := ev.Direct
		opened := ev.Kind == StateDirectOpened
		switch {
		case d == nil:
			return errStateBody
		case !ValidToken(d.ConversationID) || len(d.UserIDs) != 2 || !ValidToken(d.UserIDs[0]) ||
			!ValidToken(d.UserIDs[1]) || d.UserIDs[0] == d.UserIDs[1]:
			return bad("conversation_id and two different user_ids are required")
		case opened && d.CreatedBy != d.UserIDs[0] && d.CreatedBy != d.UserIDs[1]:
			return bad("created_by must be one of user_ids")
		case opened && d.By != "":
			return bad("by is not allowed")
		case !opened && d.By != d.UserIDs[0] && d.By != d.UserIDs[1]:
			return bad("by must be one of user_ids")
		case !opened && (d.CreatedBy != "" || d.Request):
			return bad("only conversation_id, user_ids and by are allowed")
		}
	case StateUserBlocked, StateUserUnblocked:
		b := ev.Block
		switch {
		case b == nil:
			return errStateBody
		case !ValidToken(b.UserID) || !ValidToken(b.BlockedID) || b.UserID == b.BlockedID:
			return bad("user_id and a different blocked_id are required")
		}
	case StatePresenceSet:
		p := ev.Privacy
		switch {
		case p == nil:
			return errStateBody
		case !ValidToken(p.UserID) || !ValidPresenceVisibility(p.Presence):
			return bad("user_id and presence (everyone, contacts or nobody) are required")
		}
	case StateDeviceRegistered, StateDeviceRemoved:
		d := ev.Device
		switch {
		case d == nil:
			return errStateBody
		case !ValidToken(d.UserID) || !ValidToken(d.DeviceID):
			return bad("user_id and device_id are required")
		case len(d.Platform) > 64:
			return bad("platform is too long")
		}
	case StatePushTokenSet, StatePushTokenRemoved:
		p := ev.PushToken
		switch {
		case p == nil:
			return errStateBody
		case !ValidToken(p.UserID) || !ValidToken(p.DeviceID):
			return bad("user_id and device_id are required")
		case ev.Kind == StatePushTokenSet && (p.Platform == "" || p.Token == ""):
			return bad("platform and token are required")
		case ev.Kind == StatePushTokenRemoved && (p.Platform != "" || p.Token != ""):
			return bad("only user_id and device_id are allowed")
		}
	default:
		return fmt.Errorf("decode state event: unknown kind %q", truncated(ev.Kind))
	}
	return nil
}
