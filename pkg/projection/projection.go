// Package projection makes the store a projection of the streams: every record of the store
// follows from the events of STATE (accounts, direct conversations, devices, push tokens) and
// CHAT (messages, group membership, receipts), so an empty store that is fed every event of
// both, each stream in order, ends up equal to the one natter kept while serving.
//
// The contract, for natter's own consumers and for tools that rebuild or repair a store:
//
//   - Apply(ctx, st, subject, seq, data) applies one event of either stream: its subject, its
//     stream sequence and its payload. ApplyMsg does the same for a jetstream.Msg.
//   - Apply is idempotent: applying an event again, or any range again, changes nothing.
//   - Each stream must be applied in stream order (membership changes and account events
//     depend on the ones before them); the two streams are independent of each other.
//   - An error wrapping ErrInvalid means the event can never be applied (malformed, or from a
//     newer envelope version): skip or terminate it. Any other error is transient: retry.
//
// Record is how a writer makes a change: publish the event, wait for JetStream's
// acknowledgement, apply it to the store at once (read-your-writes for the caller). The
// durable consumer "projector" applies the same events again (services/projector), which
// repairs a writer that died between the acknowledgement and its own apply.
//
// Accounts are applied so that no order of re-application brings a deleted account back: a
// deleted user is a tombstone in the store (store.Store.DeleteUser), which a replayed sign-up
// does not overwrite.
package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/streams"
)

// ErrInvalid is wrapped by every error that no retry can fix.
var ErrInvalid = errors.New("invalid event")

// ApplyMsg applies one message of STATE or CHAT; see Apply.
func ApplyMsg(ctx context.Context, st store.Store, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("%w: metadata: %w", ErrInvalid, err)
	}
	return Apply(ctx, st, msg.Subject(), meta.Sequence.Stream, msg.Data())
}

// Apply makes st reflect the event data found at seq on subject (a STATE or CHAT subject).
// Subjects of neither stream change nothing.
func Apply(ctx context.Context, st store.Store, subject string, seq uint64, data []byte) error {
	if _, kind, ok := streams.ParseChatSubject(subject); ok {
		return applyChat(ctx, st, subject, kind, seq, data)
	}
	if len(subject) > len("state.") && subject[:len("state.")] == "state." {
		ev, err := streams.DecodeStateEvent(subject, data)
		if err != nil {
			return fmt.Errorf("%w: state seq %d: %w", ErrInvalid, seq, err)
		}
		return ApplyState(ctx, st, ev)
	}
	return nil
}

func applyChat(ctx context.Context, st store.Store, subject, kind string, seq uint64, data []byte) error {
	switch kind {
	case streams.KindRead, streams.KindDelivered:
		ev, err := streams.DecodeChatEvent(data)
		if err != nil {
			return fmt.Errorf("%w: chat seq %d: %w", ErrInvalid, seq, err)
		}
		return AdvanceWatermark(ctx, st, ev)
	case streams.KindMsg, streams.KindMember, streams.KindEdit, streams.KindDelete, streams.KindHide:
		m, _, err := timeline.FromStream(subject, seq, data)
		if err != nil {
			return fmt.Errorf("%w: chat seq %d: %w", ErrInvalid, seq, err)
		}
		if streams.Revises(kind) {
			if m, err = Revise(ctx, st, m); err != nil {
				return err
			}
		}
		if _, _, err := st.InsertMessage(ctx, m); err != nil {
			return fmt.Errorf("projection: insert %s at %d: %w", m.ConversationID, seq, err)
		}
		if kind == streams.KindMember {
			ev, err := streams.DecodeChatEvent(data)
			if err != nil {
				return fmt.Errorf("%w: chat seq %d: %w", ErrInvalid, seq, err)
			}
			if err := membership.Apply(ctx, st, seq, ev); err != nil {
				return fmt.Errorf("projection: membership at %d: %w", seq, err)
			}
		}
	}
	return nil
}

// Revise applies a revision event m (an edit, delete or hide, as timeline.FromStream reads it)
// to the message it targets (store.Revise: any order, any number of times), and returns the
// entry to store at m's own seq: without text or state, which its target holds, so that a
// delete leaves no copy of the text behind. The target precedes m in CHAT but may not be
// stored yet (writers in parallel): a transient error, to retry. A target kept at another seq
// (a send retried after the duplicate window, stored once) is found by its message id. A store
// that is no store.Reviser is left as it is.
func Revise(ctx context.Context, st store.Store, m store.Message) (store.Message, error) {
	entry := m
	entry.Text, entry.EditedAt, entry.DeletedAt = "", time.Time{}, time.Time{}
	rv, ok := st.(store.Reviser)
	if !ok {
		return entry, nil
	}
	_, err := rv.ReviseMessage(ctx, m.ConversationID, m.Target, timeline.Revision(m))
	if errors.Is(err, store.ErrNotFound) && m.TargetID != "" {
		if kept, e := st.MessageByID(ctx, m.ConversationID, m.TargetID); e == nil && kept.Seq != m.Target {
			_, err = rv.ReviseMessage(ctx, m.ConversationID, kept.Seq, timeline.Revision(m))
		}
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("projection: %s at %d of %s/%d: %w", m.Kind, m.Seq, m.ConversationID, m.Target, err)
	}
	return entry, nil
}

// AdvanceWatermark raises the read or delivered watermark a receipt event names (a max: order
// free and idempotent); a read raises delivered too.
func AdvanceWatermark(ctx context.Context, st store.Store, ev streams.ChatEvent) error {
	w := store.Watermark{ConversationID: ev.ConversationID, UserID: ev.SenderID}
	switch ev.Kind {
	case streams.KindRead:
		w.Read, w.Delivered = ev.UpTo, ev.UpTo // what was read was delivered
	case streams.KindDelivered:
		w.Delivered = ev.UpTo
	default:
		return nil
	}
	if _, err := st.AdvanceWatermark(ctx, w); err != nil {
		return fmt.Errorf("advance %s watermark of %s in %s: %w", ev.Kind, ev.SenderID, ev.ConversationID, err)
	}
	return nil
}

// ApplyState makes st reflect one decoded state event.
func ApplyState(ctx context.Context, st store.Store, ev streams.StateEvent) error {
	at := time.UnixMilli(ev.At).UTC()
	switch ev.Kind {
	case streams.StateAccountCreated:
		a := ev.Account
		err := st.CreateUser(ctx, store.User{ID: a.UserID, Handle: a.Handle, DisplayName: a.DisplayName,
			PasswordHash: []byte(a.PasswordHash), CreatedAt: at})
		if errors.Is(err, store.ErrConflict) {
			// Only a store that holds accounts the stream does not (created before STATE
			// existed) can conflict with the stream's one owner of a handle.
			return fmt.Errorf("%w: sign-up of %s: %w", ErrInvalid, a.UserID, err)
		}
		if err != nil {
			return fmt.Errorf("projection: sign-up of %s: %w", a.UserID, err)
		}
	case streams.StateProfileUpdated:
		u, err := st.UserByID(ctx, ev.Account.UserID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.DisplayName == ev.Account.DisplayName) {
			return nil // deleted since, or already applied: no write (the common case for the projector)
		}
		err = st.UpdateProfile(ctx, ev.Account.UserID, ev.Account.DisplayName)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("projection: profile of %s: %w", ev.Account.UserID, err)
		}
	case streams.StateAccountDeleted:
		return deleteAccount(ctx, st, ev.Account.UserID)
	case streams.StateDirectOpened:
		return openDirect(ctx, st, *ev.Direct, at)
	case streams.StateDeviceRegistered:
		d := ev.Device
		if gone, err := missingUser(ctx, st, d.UserID); gone || err != nil {
			return err
		}
		if known, _, err := deviceState(ctx, st, d.UserID, d.DeviceID); known || err != nil {
			return err // already registered: its record (and last seen) stays
		}
		if err := st.PutDevice(ctx, store.Device{UserID: d.UserID, DeviceID: d.DeviceID, Platform: d.Platform,
			CreatedAt: at, LastSeen: at}); err != nil {
			return fmt.Errorf("projection: device %s/%s: %w", d.UserID, d.DeviceID, err)
		}
	case streams.StateDeviceRemoved:
		if known, token, err := deviceState(ctx, st, ev.Device.UserID, ev.Device.DeviceID); (!known && token == nil) || err != nil {
			return err // nothing to remove
		}
		if err := st.DeleteDevice(ctx, ev.Device.UserID, ev.Device.DeviceID); err != nil {
			return fmt.Errorf("projection: remove device %s/%s: %w", ev.Device.UserID, ev.Device.DeviceID, err)
		}
	case streams.StatePushTokenSet:
		p := ev.PushToken
		if gone, err := missingUser(ctx, st, p.UserID); gone || err != nil {
			return err
		}
		want := store.PushToken{UserID: p.UserID, DeviceID: p.DeviceID, Platform: p.Platform, Token: p.Token, UpdatedAt: at}
		if _, cur, err := deviceState(ctx, st, p.UserID, p.DeviceID); err != nil || (cur != nil && samePushToken(*cur, want)) {
			return err // already applied
		}
		if err := st.PutPushToken(ctx, want); err != nil {
			return fmt.Errorf("projection: push token %s/%s: %w", p.UserID, p.DeviceID, err)
		}
	case streams.StatePushTokenRemoved:
		if _, cur, err := deviceState(ctx, st, ev.PushToken.UserID, ev.PushToken.DeviceID); cur == nil || err != nil {
			return err // nothing to remove
		}
		if err := st.DeletePushToken(ctx, ev.PushToken.UserID, ev.PushToken.DeviceID); err != nil {
			return fmt.Errorf("projection: remove push token %s/%s: %w", ev.PushToken.UserID, ev.PushToken.DeviceID, err)
		}
	}
	return nil
}

// missingUser reports whether userID is not (or no longer) an account: a device or token
// event that raced the account's deletion must not bring its records back.
func missingUser(ctx context.Context, st store.Store, userID string) (bool, error) {
	_, err := st.UserByID(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("projection: user %s: %w", userID, err)
	}
	return false, nil
}

// deviceState reports whether the store has the device, and its push token (nil if none). The
// projection reads before it writes so that applying an event again (the projector after the
// writer) costs reads, not a write and a disk sync.
func deviceState(ctx context.Context, st store.Store, userID, deviceID string) (known bool, token *store.PushToken, err error) {
	devices, err := st.Devices(ctx, userID)
	if err != nil {
		return false, nil, fmt.Errorf("projection: devices of %s: %w", userID, err)
	}
	tokens, err := st.PushTokens(ctx, userID)
	if err != nil {
		return false, nil, fmt.Errorf("projection: push tokens of %s: %w", userID, err)
	}
	for _, d := range devices {
		known = known || d.DeviceID == deviceID
	}
	for i := range tokens {
		if tokens[i].DeviceID == deviceID {
			token = &tokens[i]
		}
	}
	return known, token, nil
}

func samePushToken(a, b store.PushToken) bool {
	return a.UserID == b.UserID && a.DeviceID == b.DeviceID && a.Platform == b.Platform && a.Token == b.Token &&
		a.UpdatedAt.Equal(b.UpdatedAt)
}

// deleteAccount makes the account a tombstone and removes its devices and push tokens.
func deleteAccount(ctx context.Context, st store.Store, userID string) error {
	if err := st.DeleteUser(ctx, userID); err != nil {
		return fmt.Errorf("projection: delete %s: %w", userID, err)
	}
	devices, err := st.Devices(ctx, userID)
	if err != nil {
		return fmt.Errorf("projection: devices of deleted %s: %w", userID, err)
	}
	for _, d := range devices {
		if err := st.DeleteDevice(ctx, userID, d.DeviceID); err != nil {
			return fmt.Errorf("projection: device of deleted %s: %w", userID, err)
		}
	}
	tokens, err := st.PushTokens(ctx, userID)
	if err != nil {
		return fmt.Errorf("projection: push tokens of deleted %s: %w", userID, err)
	}
	for _, t := range tokens {
		if err := st.DeletePushToken(ctx, userID, t.DeviceID); err != nil {
			return fmt.Errorf("projection: push token of deleted %s: %w", userID, err)
		}
	}
	return nil
}

// openDirect writes whatever is missing of a direct conversation: the record and each user's
// membership from seq 0. What exists is left alone.
func openDirect(ctx context.Context, st store.Store, d streams.DirectState, at time.Time) error {
	_, err := st.Conversation(ctx, d.ConversationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c := store.Conversation{ID: d.ConversationID, Kind: store.Direct, CreatedBy: d.CreatedBy, CreatedAt: at}
		if err := st.PutConversation(ctx, c); err != nil {
			return fmt.Errorf("projection: direct %s: %w", d.ConversationID, err)
		}
	case err != nil:
		return fmt.Errorf("projection: direct %s: %w", d.ConversationID, err)
	}
	for _, uid := range d.UserIDs {
		_, err := st.Member(ctx, d.ConversationID, uid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			m := store.Member{ConversationID: d.ConversationID, UserID: uid, Role: membership.RoleMember, JoinedAt: at}
			if err := st.PutMember(ctx, m); err != nil {
				return fmt.Errorf("projection: direct %s member %s: %w", d.ConversationID, uid, err)
			}
		case err != nil:
			return fmt.Errorf("projection: direct %s member %s: %w", d.ConversationID, uid, err)
		}
	}
	return nil
}

// Record publishes ev on its subject (with opts, e.g. jetstream.WithExpectLastSequencePerSubject),
// waits for JetStream's acknowledgement, then applies ev to st, and returns its STATE seq. An
// error from the publish is returned as it is (natsx.IsWrongLastSequence tells a lost
// compare-and-set); an error after it means the event is on the stream but not yet in st: the
// projector consumer applies it.
func Record(ctx context.Context, js jetstream.JetStream, st store.Store, ev streams.StateEvent, opts ...jetstream.PublishOpt) (uint64, error) {
	data, err := ev.Encode()
	if err != nil {
		return 0, fmt.Errorf("record %s: %w", ev.Kind, err)
	}
	msg := nats.NewMsg(ev.Subject())
	msg.Data = data
	msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
	ack, err := js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return 0, fmt.Errorf("record %s: publish: %w", ev.Kind, err)
	}
	if err := ApplyState(ctx, st, ev); err != nil {
		return ack.Sequence, fmt.Errorf("record %s at %d: apply: %w", ev.Kind, ack.Sequence, err)
	}
	return ack.Sequence, nil
}
