package push

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"firebase.google.com/go/v4/messaging"

	"github.com/natter-chat/natter/streams"
)

// MaxPayload is FCM's limit for one message, in bytes. push holds the whole request body it
// sends ({"message":{...}}, token and all) to it: stricter than FCM, which counts only the
// notification and data, so a message that passes here is never refused for its size.
const MaxPayload = 4096

// ellipsis ends a preview that was cut.
const ellipsis = "…"

// Content is what one notification says.
type Content struct {
	SenderName       string
	ConversationID   string
	ConversationName string // groups only; empty for a direct conversation
	MessageID        string
	SenderID         string
	Seq              uint64
	// Text is the message (or its start); Truncated says the message goes on after it.
	Text      string
	Truncated bool
	// Badge is the user's total unread count.
	Badge int
}

// Title is the notification title: the sender's name, and the group's name in a group.
func (c Content) Title() string {
	name := c.SenderName
	if name == "" {
		name = "New message"
	}
	if c.ConversationName != "" {
		return name + " · " + c.ConversationName
	}
	return name
}

// Message builds the FCM message of c for one token: notification (title, preview), data
// (conversation, message and sender ids, seq, badge), one collapse key per conversation on
// Android (collapse_key, notification tag) and APNs (apns-collapse-id, thread-id), the badge on
// both. The preview is cut (by code points, ending with "…") until the request fits MaxPayload.
func Message(token string, c Content) (*messaging.Message, error) {
	text, cut := cutRunes(c.Text, MaxPayload) // more than MaxPayload code points never fit
	cut = cut || c.Truncated
	preview := text
	if cut {
		preview += ellipsis
	}
	m := build(token, c, preview)
	size, err := requestSize(m)
	if err != nil {
		return nil, err
	}
	if size <= MaxPayload {
		return m, nil
	}
	// Binary search for the longest prefix (in code points) that fits with the ellipsis.
	offsets := make([]int, 0, utf8.RuneCountInString(text)+1)
	for i := range text {
		offsets = append(offsets, i)
	}
	offsets = append(offsets, len(text))
	lo, hi := 0, len(offsets)-1 // prefix of offsets[n] bytes = n code points
	var best *messaging.Message
	for lo <= hi {
		n := (lo + hi) / 2
		cand := build(token, c, text[:offsets[n]]+ellipsis)
		size, err := requestSize(cand)
		if err != nil {
			return nil, err
		}
		if size <= MaxPayload {
			best, lo = cand, n+1
		} else {
			hi = n - 1
		}
	}
	if best == nil {
		return nil, fmt.Errorf("push: a notification for message %s does not fit %d bytes even without a preview", c.MessageID, MaxPayload)
	}
	return best, nil
}

func build(token string, c Content, preview string) *messaging.Message {
	badge := c.Badge
	return &messaging.Message{
		Token:        token,
		Notification: &messaging.Notification{Title: c.Title(), Body: preview},
		Data: map[string]string{
			"type":            "message",
			"conversation_id": c.ConversationID,
			"message_id":      c.MessageID,
			"sender_id":       c.SenderID,
			"seq":             strconv.FormatUint(c.Seq, 10),
			"badge":           strconv.Itoa(badge),
		},
		Android: &messaging.AndroidConfig{
			CollapseKey:  c.ConversationID,
			Priority:     "high",
			Notification: &messaging.AndroidNotification{Tag: c.ConversationID, NotificationCount: &badge},
		},
		APNS: &messaging.APNSConfig{
			Headers: map[string]string{
				"apns-collapse-id": c.ConversationID,
				"apns-push-type":   "alert",
				"apns-priority":    "10",
			},
			Payload: &messaging.APNSPayload{Aps: &messaging.Aps{Badge: &badge, ThreadID: c.ConversationID, Sound: "default"}},
		},
	}
}

// requestSize is the size of the HTTP v1 request body that sends m, encoded as the SDK does.
func requestSize(m *messaging.Message) (int, error) {
	b, err := json.Marshal(struct {
		Message *messaging.Message `json:"message"`
	}{m})
	if err != nil {
		return 0, fmt.Errorf("push: encode message: %w", err)
	}
	return len(b), nil
}

// cutRunes returns the first n code points of s and whether anything was cut.
func cutRunes(s string, n int) (string, bool) { return streams.CutRunes(s, n) }
