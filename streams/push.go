package streams

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// Push notifications: fanout publishes a PushRequest on push.<user> (the PUSH work queue) for each
// member of a conversation with no connected device; the push consumer sends it through FCM. What
// happened to each (message, device) is written to the push_ledger bucket, by push and by fanout
// (for members who were online); mute settings live in push_settings. Requests that keep failing
// go to the PUSH_DEAD stream with their reason.
const (
	// PushDeadStream keeps the push requests that could not be sent after every attempt, with
	// their reason, for PushDeadMaxAge. Nothing consumes it; operators read it (nats stream view)
	// and may republish a request to push.<user>.
	PushDeadStream = "PUSH_DEAD"
	// PushConsumer is the push service's durable consumer on PUSH.
	PushConsumer = "push"
	// PushLedgerBucket: <user>.<message>.<device> (and <user>.<message> for outcomes that concern
	// no device, such as "no push token") -> PushLedgerEntry, kept PushLedgerTTL.
	PushLedgerBucket = "push_ledger"
	// PushSettingsBucket: <user>.<conversation> -> PushSetting (mute); absent means not muted.
	PushSettingsBucket = "push_settings"

	// PushLedgerTTL is how long the ledger remembers what happened to a push.
	PushLedgerTTL = 7 * 24 * time.Hour
	// PushLedgerHistory is how many entries the ledger keeps per key (attempts of one device).
	PushLedgerHistory = 8
	// PushDeadMaxAge is how long dead push requests are kept by default (Options.PushDeadMaxAge).
	PushDeadMaxAge = 14 * 24 * time.Hour

	// PushPreviewRunes bounds the text a PushRequest carries. No notification can show more (FCM
	// takes at most 4096 bytes per message), so fanout cuts the text here instead of copying a
	// 100,000-character message into PUSH once per offline member.
	PushPreviewRunes = 1024
)

// PushAll matches every push request.
const PushAll = "push.>"

// PushDeadSubject is push_dead.<user>, the subject of a dead push request in PUSH_DEAD.
func PushDeadSubject(userID string) string { return "push_dead." + userID }

// PushMsgID is the Nats-Msg-Id of the push request for one message and one user, so that a
// redelivered fanout event does not push twice.
func PushMsgID(messageID, userID string) string { return messageID + ":" + userID }

// PushLedgerKey is the ledger key of one (user, message, device); an empty device gives the
// user-level key <user>.<message>.
func PushLedgerKey(userID, messageID, deviceID string) string {
	if deviceID == "" {
		return userID + "." + messageID
	}
	return userID + "." + messageID + "." + deviceID
}

// PushSettingKey is the push_settings key of one user's settings for one conversation.
func PushSettingKey(userID, conversationID string) string { return userID + "." + conversationID }

// PushRequest asks the push service to notify one user of one message. Published by fanout on
// push.<user> with Nats-Msg-Id PushMsgID(message, user).
type PushRequest struct {
	V              int    `json:"v"`
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	// Seq is the message's CHAT seq: a read watermark at or above it means the user read it.
	Seq      uint64 `json:"seq"`
	SenderID string `json:"sender_id"`
	// Text is the start of the message, at most PushPreviewRunes code points; Truncated says
	// whether the message goes on.
	Text      string `json:"text"`
	Truncated bool   `json:"truncated,omitempty"`
	SentAt    int64  `json:"sent_at"` // Unix milliseconds
}

// NewPushRequest is the request for userID of the message ev at seq, its text cut to
// PushPreviewRunes.
func NewPushRequest(userID string, seq uint64, ev ChatEvent) PushRequest {
	text, cut := CutRunes(ev.Text, PushPreviewRunes)
	return PushRequest{
		V: Version, UserID: userID, ConversationID: ev.ConversationID, MessageID: ev.MessageID, Seq: seq,
		SenderID: ev.SenderID, Text: text, Truncated: cut, SentAt: ev.SentAt,
	}
}

// CutRunes returns the first n code points of s and whether anything was cut.
func CutRunes(s string, n int) (string, bool) {
	if len(s) <= n { // n code points take at least n bytes
		return s, false
	}
	i := 0
	for k := 0; k < n; k++ {
		if i >= len(s) {
			return s, false
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i], i < len(s)
}

// Encode marshals the request with the current version.
func (r PushRequest) Encode() ([]byte, error) {
	r.V = Version
	return json.Marshal(r)
}

// DecodePushRequest parses and checks a push request.
func DecodePushRequest(data []byte) (PushRequest, error) {
	var r PushRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return PushRequest{}, fmt.Errorf("decode push request: %w", err)
	}
	if r.V != Version {
		return PushRequest{}, fmt.Errorf("decode push request v%d: %w", r.V, ErrVersion)
	}
	if !ValidToken(r.UserID) || !ValidToken(r.ConversationID) || !ValidToken(r.MessageID) || r.Seq == 0 {
		return PushRequest{}, errors.New("decode push request: user_id, conversation_id, message_id and seq are required")
	}
	return r, nil
}

// PushDeadLetter is what PUSH_DEAD keeps of a push request that failed every attempt.
type PushDeadLetter struct {
	V       int         `json:"v"`
	Request PushRequest `json:"request"`
	// Reason is the last failure, e.g. "fcm: 503 UNAVAILABLE".
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	// Devices are the devices the push did not reach.
	Devices []string `json:"devices,omitempty"`
	At      int64    `json:"at"` // Unix milliseconds
}

// Ledger outcomes.
const (
	PushSent     = "sent"
	PushSkipped  = "skipped"
	PushFailed   = "failed"
	PushRetrying = "retrying" // a transient failure; another attempt follows (not final)
)

// Ledger reasons (with PushSkipped or PushFailed).
const (
	PushReasonOnline       = "online"        // skipped: a device of the user was connected
	PushReasonMuted        = "muted"         // skipped: the user muted the conversation
	PushReasonRead         = "read"          // skipped: read on another device before the push went
	PushReasonDeleted      = "deleted"       // skipped: the message was deleted (for everyone, or by the user) before the push went
	PushReasonNoToken      = "no_token"      // skipped: no device of the user has a push token
	PushReasonUnregistered = "unregistered"  // failed: FCM says the token is gone (token removed)
	PushReasonInvalidToken = "invalid_token" // failed: FCM says the token is not valid (token removed)
	PushReasonRejected     = "rejected"      // failed: FCM refused the message for good
	PushReasonDeadLetter   = "dead_letter"   // failed: every attempt failed; the request is in PUSH_DEAD
	PushReasonTransient    = "transient"     // retrying: 429, 5xx, a timeout or a network error
)

// PushLedgerEntry is one push_ledger value: what happened to one message for one device (or, with
// DeviceID empty, for the user).
type PushLedgerEntry struct {
	UserID         string `json:"user_id"`
	MessageID      string `json:"message_id"`
	ConversationID string `json:"conversation_id,omitempty"`
	DeviceID       string `json:"device_id,omitempty"`
	Outcome        string `json:"outcome"`          // PushSent, PushSkipped, PushFailed, PushRetrying
	Reason         string `json:"reason,omitempty"` // PushReason*
	// Detail is for people: the gateway a device was online on, FCM's answer, the provider.
	Detail   string `json:"detail,omitempty"`
	Attempt  int    `json:"attempt,omitempty"`
	Provider string `json:"provider,omitempty"` // "fcm" or "log" (no credentials configured)
	At       int64  `json:"at"`                 // Unix milliseconds
}

// Final reports whether the entry ends the story of its key: another attempt will not change it.
func (e PushLedgerEntry) Final() bool { return e.Outcome != PushRetrying && e.Outcome != "" }

// PushSetting is a push_settings value.
type PushSetting struct {
	Muted     bool  `json:"muted"`
	UpdatedAt int64 `json:"updated_at"` // Unix milliseconds
}

// addPush adds push's dead-letter stream, buckets and durable consumer.
func (d *Definitions) addPush(o Options) {
	d.Streams = append(d.Streams, jetstream.StreamConfig{
		Name:        PushDeadStream,
		Description: "natter push requests that failed every attempt, with the reason: push_dead.<user>",
		Subjects:    []string{"push_dead.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      o.PushDeadMaxAge,
		Discard:     jetstream.DiscardOld,
	})
	d.Buckets = append(d.Buckets,
		jetstream.KeyValueConfig{Bucket: PushLedgerBucket, Description: "<user>.<message>[.<device>] -> what happened to a push",
			TTL: PushLedgerTTL, History: PushLedgerHistory, Replicas: o.Replicas, Storage: jetstream.FileStorage},
		jetstream.KeyValueConfig{Bucket: PushSettingsBucket, Description: "<user>.<conversation> -> push settings (mute)",
			History: 1, Replicas: o.Replicas, Storage: jetstream.FileStorage},
	)
	if d.Consumers == nil {
		d.Consumers = map[string][]jetstream.ConsumerConfig{}
	}
	d.Consumers[PushStream] = append(d.Consumers[PushStream], jetstream.ConsumerConfig{
		Durable:       PushConsumer,
		Description:   "sends push notifications through FCM",
		FilterSubject: PushAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: 10000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      o.Replicas,
	})
}
