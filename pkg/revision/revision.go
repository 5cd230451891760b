// Package revision decides edits and deletes of messages, for the gateway's edit and delete
// frames and the API's equivalents alike: who may revise which message until when, and the
// CHAT event that does it.
//
// The rules:
//   - edit: the sender of the message, while a member, within the edit window of its sent_at,
//     unless it was deleted for everyone;
//   - delete for everyone: its sender, or an admin of its group (MayModerate), while a member;
//   - delete for me (a hide): any member, current or former, who may see the message.
//
// The event is published with the dedupe id of the user's client_msg_id, as a send is, so a
// retried edit or delete is one event.
package revision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// DefaultEditWindow is how long after sending a message its sender may edit it.
const DefaultEditWindow = 15 * time.Minute

// Request is one edit or delete asked for by UserID (on DeviceID, if a device).
type Request struct {
	// Kind is streams.KindEdit, streams.KindDelete (for everyone) or streams.KindHide (for me).
	Kind           string
	ConversationID string
	TargetSeq      uint64
	UserID         string
	DeviceID       string
	ClientMsgID    string
	Text           string // an edit's new text, already validated (protocol.ValidateText)
}

// Errors a refused request gets, with the code a client sees.
var (
	ErrNotMember      = protocol.Errorf(protocol.CodeNotMember, "not a member of this conversation, or it does not exist")
	ErrNotFound       = protocol.Errorf(protocol.CodeMessageNotFound, "no such message in this conversation")
	ErrNotYours       = protocol.Errorf(protocol.CodeNotAllowed, "only the sender of a message may edit it")
	ErrNotAllowed     = protocol.Errorf(protocol.CodeNotAllowed, "only the sender of a message or an admin of the group may delete it for everyone")
	ErrEditExpired    = protocol.Errorf(protocol.CodeEditExpired, "the time to edit this message has passed")
	ErrMessageDeleted = protocol.Errorf(protocol.CodeMessageDeleted, "the message was deleted")
)

// MayModerate reports whether member m may delete other members' messages of conversation c
// for everyone: the admins of a group (its owner included, membership.IsAdmin).
func MayModerate(c store.Conversation, m store.Member) bool {
	return c.Kind == store.Group && membership.IsAdmin(m)
}

// Decider decides requests against the store and the timeline.
type Decider struct {
	Store    store.Store
	Timeline *timeline.Reader
	// EditWindow is how long after its sent_at a message may be edited; 0 means no limit.
	EditWindow time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Decide checks r and returns the event to publish, or a refusal (a *protocol.Error from the
// list above) with a nil error; a non-nil error is a failure of the store or the stream.
func (d *Decider) Decide(ctx context.Context, r Request) (streams.ChatEvent, *protocol.Error, error) {
	m, err := d.Store.Member(ctx, r.ConversationID, r.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return streams.ChatEvent{}, ErrNotMember, nil
	case err != nil:
		return streams.ChatEvent{}, nil, fmt.Errorf("revision: member: %w", err)
	}
	if r.Kind != streams.KindHide && !m.Active() {
		return streams.ChatEvent{}, ErrNotMember, nil
	}
	if !m.Sees(r.TargetSeq) {
		return streams.ChatEvent{}, ErrNotFound, nil
	}
	target, err := d.target(ctx, r.ConversationID, r.TargetSeq)
	if err != nil {
		return streams.ChatEvent{}, nil, err
	}
	if target.Seq != r.TargetSeq || target.Kind != streams.KindMsg {
		return streams.ChatEvent{}, ErrNotFound, nil
	}
	if target.Deleted() {
		return streams.ChatEvent{}, ErrMessageDeleted, nil
	}
	now := d.now
	switch r.Kind {
	case streams.KindEdit:
		if target.SenderID != r.UserID {
			return streams.ChatEvent{}, ErrNotYours, nil
		}
		if d.EditWindow > 0 && now().Sub(target.SentAt) > d.EditWindow {
			return streams.ChatEvent{}, ErrEditExpired, nil
		}
	case streams.KindDelete:
		if target.SenderID != r.UserID {
			conv, err := d.Store.Conversation(ctx, r.ConversationID)
			if err != nil {
				return streams.ChatEvent{}, nil, fmt.Errorf("revision: conversation: %w", err)
			}
			if !MayModerate(conv, m) {
				return streams.ChatEvent{}, ErrNotAllowed, nil
			}
		}
	case streams.KindHide:
		if target.HiddenTo(r.UserID) {
			return streams.ChatEvent{}, ErrMessageDeleted, nil
		}
	default:
		return streams.ChatEvent{}, nil, fmt.Errorf("revision: unknown kind %q", r.Kind)
	}
	ev := streams.ChatEvent{
		V: streams.Version, Kind: r.Kind, ConversationID: r.ConversationID, MessageID: ulid.Make().String(),
		SenderID: r.UserID, SenderDevice: r.DeviceID, ClientMsgID: r.ClientMsgID, SentAt: now().UnixMilli(),
		Target: &streams.Target{Seq: target.Seq, MessageID: target.ID},
	}
	if r.Kind == streams.KindEdit {
		ev.Text = r.Text
	}
	return ev, nil, nil
}

// Previous finds the event userID already made with clientMsgID in conv: in the store, or in
// the part of the stream the persister has not stored yet. A retried send, edit or delete whose
// first attempt went through is answered with that event, whether or not it is still inside
// JetStream's duplicate window and however far the persister lags (for an edit or delete, the
// first attempt may also be what makes the retry look refused: its message is now deleted).
func (d *Decider) Previous(ctx context.Context, conv, userID, clientMsgID string) (store.Message, bool, error) {
	return d.previous(ctx, conv, userID, clientMsgID, false)
}

// PreviousOutside is Previous for a retry about to be published with its dedupe id: JetStream
// recognises a first attempt it stored within CHAT's duplicate window, so the stream is searched
// only up to the first event sent less than a third of the window ago. The window is the
// stream's own (timeline.Reader.DuplicateWindow, at most a second old), not this process's flag:
// a process whose --dedupe-window differs from the one the stream was last given still stops
// where JetStream's memory ends. (For that second after CHAT's window is cut to less than a
// third of what it was, a first attempt aged between the two can be missed.) The other two
// thirds (10 s of the default 15 s) are for the retry to reach JetStream after this check (the
// gateway gives a send 5 s) and for clocks that differ between the processes that stamp
// sent_at. While the persister keeps up that is one read of the stream, however busy the
// conversation.
func (d *Decider) PreviousOutside(ctx context.Context, conv, userID, clientMsgID string) (store.Message, bool, error) {
	return d.previous(ctx, conv, userID, clientMsgID, true)
}

// previous is Previous that, outside, stops reading the stream at the first event sent within a
// third of CHAT's duplicate window.
func (d *Decider) previous(ctx context.Context, conv, userID, clientMsgID string, outside bool) (store.Message, bool, error) {
	m, err := d.Store.MessageByClientID(ctx, userID, clientMsgID)
	switch {
	case err == nil:
		return m, true, nil
	case !errors.Is(err, store.ErrNotFound):
		return store.Message{}, false, fmt.Errorf("revision: client id: %w", err)
	}
	marks, err := d.Timeline.Marks(ctx)
	if err != nil {
		return store.Message{}, false, fmt.Errorf("revision: %w", err)
	}
	var before time.Time // zero: read to the head
	if outside {
		window, err := d.Timeline.DuplicateWindow(ctx)
		if err != nil {
			return store.Message{}, false, fmt.Errorf("revision: %w", err)
		}
		if window > 0 {
			before = d.now().Add(-window / 3)
		}
	}
	var found store.Message
	err = d.Timeline.Range(ctx, marks, conv, marks.Stored, marks.Head, func(m store.Message) error {
		switch {
		case m.SenderID == userID && m.ClientMsgID == clientMsgID:
			found = m
			return errFound
		case !before.IsZero() && m.SentAt.After(before):
			return errInsideWindow
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, true, nil
	case err != nil && !errors.Is(err, errInsideWindow):
		return store.Message{}, false, fmt.Errorf("revision: client id in the stream: %w", err)
	}
	// Stored meanwhile?
	if m, err = d.Store.MessageByClientID(ctx, userID, clientMsgID); err == nil {
		return m, true, nil
	}
	return store.Message{}, false, nil
}

var errInsideWindow = errors.New("inside the duplicate window")

func (d *Decider) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

var errFound = errors.New("found")

// target reads the message at seq as history shows it: from the store or, while the persister
// lags, the stream, with every edit and delete so far applied.
func (d *Decider) target(ctx context.Context, conv string, seq uint64) (store.Message, error) {
	page, err := d.Timeline.Page(ctx, conv, store.Page{After: seq - 1, Oldest: true, Limit: 1})
	if err != nil {
		return store.Message{}, fmt.Errorf("revision: read message %d: %w", seq, err)
	}
	if len(page) == 0 {
		return store.Message{}, nil
	}
	return page[0], nil
}
