package push

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/streams"
)

// Ledger is the push_ledger bucket: per message and device, what happened to its push (sent,
// skipped and why, failed and why). push writes it; fanout writes "skipped: online"; `natter push
// why` reads it. Safe for concurrent use.
type Ledger struct{ kv jetstream.KeyValue }

// OpenLedger binds the push_ledger bucket (created by the stream definitions).
func OpenLedger(ctx context.Context, js jetstream.JetStream) (*Ledger, error) {
	kv, err := js.KeyValue(ctx, streams.PushLedgerBucket)
	if err != nil {
		return nil, fmt.Errorf("push ledger: %w", err)
	}
	return &Ledger{kv: kv}, nil
}

// Put records e under its (user, message, device) key; At defaults to now.
func (l *Ledger) Put(ctx context.Context, e streams.PushLedgerEntry) error {
	if e.At == 0 {
		e.At = time.Now().UnixMilli()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("push ledger: encode: %w", err)
	}
	if _, err := l.kv.Put(ctx, streams.PushLedgerKey(e.UserID, e.MessageID, e.DeviceID), b); err != nil {
		return fmt.Errorf("push ledger: put %s/%s/%s: %w", e.UserID, e.MessageID, e.DeviceID, err)
	}
	return nil
}

// Latest returns the newest entry of (user, message, device); ok is false if there is none.
func (l *Ledger) Latest(ctx context.Context, userID, messageID, deviceID string) (streams.PushLedgerEntry, bool, error) {
	kve, err := l.kv.Get(ctx, streams.PushLedgerKey(userID, messageID, deviceID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return streams.PushLedgerEntry{}, false, nil
	case err != nil:
		return streams.PushLedgerEntry{}, false, fmt.Errorf("push ledger: get %s/%s/%s: %w", userID, messageID, deviceID, err)
	}
	var e streams.PushLedgerEntry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return streams.PushLedgerEntry{}, false, fmt.Errorf("push ledger: decode %s: %w", kve.Key(), err)
	}
	return e, true, nil
}

// Entries returns every entry the ledger keeps for one user and message (each device's
// attempts included), oldest first.
func (l *Ledger) Entries(ctx context.Context, userID, messageID string) ([]streams.PushLedgerEntry, error) {
	if !streams.ValidToken(userID) || !streams.ValidToken(messageID) {
		return nil, fmt.Errorf("push ledger: user %q and message %q must be ids", userID, messageID)
	}
	w, err := l.kv.WatchFiltered(ctx, []string{
		streams.PushLedgerKey(userID, messageID, ""), streams.PushLedgerKey(userID, messageID, "*"),
	}, jetstream.IncludeHistory(), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("push ledger: watch %s/%s: %w", userID, messageID, err)
	}
	defer func() { _ = w.Stop() }()
	var out []streams.PushLedgerEntry
	for {
		select {
		case kve, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("push ledger: watch ended early")
			}
			if kve == nil { // every stored entry was delivered
				slices.SortStableFunc(out, func(a, b streams.PushLedgerEntry) int { return cmp.Compare(a.At, b.At) })
				return out, nil
			}
			var e streams.PushLedgerEntry
			if err := json.Unmarshal(kve.Value(), &e); err != nil {
				return nil, fmt.Errorf("push ledger: decode %s: %w", kve.Key(), err)
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("push ledger: read %s/%s: %w", userID, messageID, ctx.Err())
		}
	}
}

// Explain answers "why did I (not) get a push?" from the entries of one user and message: a line
// per entry, then a verdict per device from its latest entry.
func Explain(userID, messageID string, entries []streams.PushLedgerEntry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "push ledger for user %s, message %s\n", userID, messageID)
	if len(entries) == 0 {
		b.WriteString("\nno entries. Either no push was due (the user sent the message, was not a member, or had a\n" +
			"connected device when it arrived: natter run --push-online-ledger records that too),\n" +
			"or the message is older than the ledger keeps (" + fmt.Sprint(int(streams.PushLedgerTTL.Hours()/24)) + " days), or its push request\n" +
			"is still queued (is the push component running?), or the user or message id is wrong.\n")
		return b.String()
	}
	if c := entries[0].ConversationID; c != "" {
		fmt.Fprintf(&b, "conversation %s\n", c)
	}
	b.WriteString("\n")
	latest := map[string]streams.PushLedgerEntry{}
	var devices []string
	for _, e := range entries {
		fmt.Fprintf(&b, "  %s  %-18s %s\n", time.UnixMilli(e.At).UTC().Format("2006-01-02 15:04:05.000"), device(e), summary(e))
		if _, seen := latest[e.DeviceID]; !seen {
			devices = append(devices, e.DeviceID)
		}
		latest[e.DeviceID] = e
	}
	b.WriteString("\n")
	for _, d := range devices {
		fmt.Fprintf(&b, "%s: %s\n", device(latest[d]), verdict(latest[d]))
	}
	return b.String()
}

func device(e streams.PushLedgerEntry) string {
	if e.DeviceID == "" {
		return "(user)"
	}
	return "device " + e.DeviceID
}

func summary(e streams.PushLedgerEntry) string {
	s := e.Outcome
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Attempt > 0 {
		s += fmt.Sprintf(" (attempt %d)", e.Attempt)
	}
	if e.Provider != "" {
		s += " via " + e.Provider
	}
	if e.Detail != "" {
		s += " — " + e.Detail
	}
	return s
}

func verdict(e streams.PushLedgerEntry) string {
	at := time.UnixMilli(e.At).UTC().Format(time.RFC3339)
	switch e.Outcome {
	case streams.PushSent:
		if e.Provider == "log" {
			return "the push was only logged at " + at + ": no FCM credentials are configured (--fcm-credentials, --fcm-project)."
		}
		return "a push was sent at " + at + " and FCM accepted it; if it did not show, look at the device (notification permission, battery saver, the app's token)."
	case streams.PushRetrying:
		return "FCM failed (" + e.Detail + ") on attempt " + fmt.Sprint(e.Attempt) + "; a retry is pending."
	}
	switch e.Reason {
	case streams.PushReasonOnline:
		return "no push: you were online (" + e.Detail + ") when the message arrived, so it was delivered over the connection."
	case streams.PushReasonMuted:
		return "no push: you muted conversation " + e.ConversationID + "."
	case streams.PushReasonRead:
		return "no push: you had already read the message on another device before its push went out."
	case streams.PushReasonNoToken:
		return "no push: none of your devices had a push token registered (PUT /v1/devices/{device}/push-token)."
	case streams.PushReasonUnregistered:
		return "no push: FCM said this device's token is no longer registered (app uninstalled or token rotated); the token was removed, and the app must register a new one."
	case streams.PushReasonInvalidToken:
		return "no push: FCM said this device's token is not valid for this project; the token was removed."
	case streams.PushReasonDeadLetter:
		return "no push: FCM kept failing (" + e.Detail + "); after " + fmt.Sprint(e.Attempt) + " attempts the request went to the " + streams.PushDeadStream + " stream."
	case streams.PushReasonRejected:
		return "no push: FCM refused the message (" + e.Detail + ")."
	}
	return e.Outcome + " " + e.Reason
}
