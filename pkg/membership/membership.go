// Package membership makes group membership changes events of the conversation: ordered with its
// messages on chat.<conversation>.member, and applied to the store idempotently, in stream order,
// by the API that published one (after applying the one before it) and by fanout before it
// routes anything later. A member's record keeps their latest interval, so events must not be
// applied out of order (a parallel consumer must not apply them).
//
// A member added by the event at seq j sees events from j on (JoinedSeq = j-1), so the new member
// receives the event that added them. A member removed by the event at seq r sees it and nothing
// after (LeftSeq = r).
package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Roles.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// Apply makes the store reflect the member event ev at seq: a created event also writes the
// group's record (unless it exists), a renamed one its name. It is idempotent, and an event older
// than what is recorded for a user changes nothing for that user, so replaying any range in
// stream order changes nothing.
func Apply(ctx context.Context, st store.Store, seq uint64, ev streams.ChatEvent) error {
	if ev.Kind != streams.KindMember || ev.Member == nil {
		return nil
	}
	c := ev.Member
	if c.Action == streams.MemberCreated {
		if err := createGroup(ctx, st, ev); err != nil {
			return err
		}
	}
	switch c.Action {
	case streams.MemberCreated, streams.MemberAdded:
		for _, u := range c.UserIDs {
			role := RoleMember
			if c.Action == streams.MemberCreated && u == ev.SenderID {
				role = RoleOwner
			}
			if err := join(ctx, st, ev.ConversationID, u, role, seq, ev.SentAt); err != nil {
				return err
			}
		}
	case streams.MemberRemoved, streams.MemberLeft:
		for _, u := range c.UserIDs {
			if err := leave(ctx, st, ev.ConversationID, u, seq); err != nil {
				return err
			}
		}
	case streams.MemberRenamed:
		conv, err := st.Conversation(ctx, ev.ConversationID)
		if err != nil {
			return fmt.Errorf("rename %s: %w", ev.ConversationID, err)
		}
		if conv.Name != c.Name {
			conv.Name = c.Name
			if err := st.PutConversation(ctx, conv); err != nil {
				return fmt.Errorf("rename %s: %w", ev.ConversationID, err)
			}
		}
	}
	return nil
}

// createGroup writes the group record a created event describes, unless it exists: the event
// is the group's creation, so the store can be rebuilt from CHAT alone.
func createGroup(ctx context.Context, st store.Store, ev streams.ChatEvent) error {
	_, err := st.Conversation(ctx, ev.ConversationID)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("create %s: %w", ev.ConversationID, err)
	}
	conv := store.Conversation{ID: ev.ConversationID, Kind: store.Group, Name: ev.Member.Name, CreatedBy: ev.SenderID,
		CreatedAt: time.UnixMilli(ev.SentAt).UTC()}
	if err := st.PutConversation(ctx, conv); err != nil {
		return fmt.Errorf("create %s: %w", ev.ConversationID, err)
	}
	return nil
}

// lastChange is the seq of the event that produced m's current state.
func lastChange(m store.Member) uint64 {
	if !m.Active() {
		return m.LeftSeq
	}
	return m.JoinedSeq + 1
}

func join(ctx context.Context, st store.Store, conv, user, role string, seq uint64, sentAt int64) error {
	old, err := st.Member(ctx, conv, user)
	switch {
	case err == nil && lastChange(old) >= seq:
		return nil // already reflects this event or a later one
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("add %s to %s: %w", user, conv, err)
	}
	m := store.Member{ConversationID: conv, UserID: user, Role: role, JoinedSeq: seq - 1, JoinedAt: time.UnixMilli(sentAt).UTC()}
	if err := st.PutMember(ctx, m); err != nil {
		return fmt.Errorf("add %s to %s: %w", user, conv, err)
	}
	return nil
}

func leave(ctx context.Context, st store.Store, conv, user string, seq uint64) error {
	old, err := st.Member(ctx, conv, user)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, conv, err)
	}
	if lastChange(old) >= seq {
		return nil
	}
	old.LeftSeq = seq
	if err := st.PutMember(ctx, old); err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, conv, err)
	}
	return nil
}

// ErrConflict: membership kept changing under a request; it may be retried.
var ErrConflict = errors.New("membership changed concurrently")

// Decide computes the change to make from the current members (active and former), or refuses
// with an error that Change returns as it is.
type Decide func(members []store.Member) (streams.MemberChange, error)

// Change publishes one membership change of conv by actor, as decide computes it from the
// current members. Changes of one conversation are serialized by JetStream itself: the event is
// published only if no other member event came in between (expected last subject sequence), so
// limits such as store.MaxGroupMembers hold under concurrent requests from any number of API
// instances. The change is applied to the store before Change returns.
func Change(ctx context.Context, js jetstream.JetStream, st store.Store, conv, actor string, decide Decide) (uint64, error) {
	stream, err := js.Stream(ctx, streams.ChatStream)
	if err != nil {
		return 0, fmt.Errorf("membership: stream: %w", err)
	}
	subject := streams.ChatSubject(conv, streams.KindMember)
	for attempt := 0; attempt < 8; attempt++ {
		last, err := catchUp(ctx, stream, st, subject)
		if err != nil {
			return 0, err
		}
		members, err := st.Members(ctx, conv)
		if err != nil {
			return 0, fmt.Errorf("membership: members of %s: %w", conv, err)
		}
		change, err := decide(members)
		if err != nil {
			return 0, err
		}
		ev := streams.ChatEvent{Kind: streams.KindMember, ConversationID: conv, MessageID: ulid.Make().String(),
			SenderID: actor, SentAt: time.Now().UnixMilli(), Member: &change}
		data, err := ev.Encode()
		if err != nil {
			return 0, fmt.Errorf("membership: encode: %w", err)
		}
		msg := nats.NewMsg(subject)
		msg.Data = data
		msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last))
		if natsx.IsWrongLastSequence(err) {
			continue // another change won the race: re-read and re-check
		}
		if err != nil {
			return 0, fmt.Errorf("membership: publish: %w", err)
		}
		if err := Apply(ctx, st, ack.Sequence, ev); err != nil {
			return 0, fmt.Errorf("membership: apply: %w", err)
		}
		return ack.Sequence, nil
	}
	return 0, ErrConflict
}

// catchUp applies the conversation's latest member event (normally already applied) and returns
// its seq, 0 if there is none.
func catchUp(ctx context.Context, stream jetstream.Stream, st store.Store, subject string) (uint64, error) {
	raw, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("membership: last event: %w", err)
	}
	ev, err := streams.DecodeChatEvent(raw.Data)
	if err != nil {
		return 0, fmt.Errorf("membership: last event: %w", err)
	}
	if err := Apply(ctx, st, raw.Sequence, ev); err != nil {
		return 0, err
	}
	return raw.Sequence, nil
}

// Active returns the current members among ms.
func Active(ms []store.Member) []store.Member {
	out := ms[:0:0]
	for _, m := range ms {
		if m.Active() {
			out = append(out, m)
		}
	}
	return out
}
