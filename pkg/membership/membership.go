// Package membership makes group membership changes events of the conversation: ordered with its
// messages on chat.<conversation>.member, and applied to the store idempotently, in stream order,
// by the API that published one (after applying the one before it) and by fanout before it
// routes anything later. Each record keeps the seq of the latest event applied to it, so events
// must not be applied out of order (a parallel consumer must not apply them).
//
// A member added by the event at seq j sees events from j on (JoinedSeq = j-1), so the new member
// receives the event that added them. A member removed by the event at seq r sees it and nothing
// after (LeftSeq = r). A member who joins again starts a new interval; the earlier ones are kept
// and still seen. An invited user is not a member until they accept: the accepted event is
// where their interval starts.
//
// Roles: one owner, any number of admins, the rest members. IsAdmin says who manages the group
// (the owner counts as an admin); Allowed says which role may do what to whom.
package membership

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// IsAdmin reports whether m is a current member who manages the group: its owner or an admin.
func IsAdmin(m store.Member) bool {
	return m.Active() && (m.Role == RoleOwner || m.Role == RoleAdmin)
}

// IsOwner reports whether m is the group's current owner.
func IsOwner(m store.Member) bool { return m.Active() && m.Role == RoleOwner }

// Actions, for Allowed.
const (
	ActLeave    = "leave"    // leave the group
	ActRename   = "rename"   // rename the group
	ActInvite   = "invite"   // invite users, or withdraw an invitation
	ActRemove   = "remove"   // remove another member
	ActPromote  = "promote"  // make a member an admin
	ActDemote   = "demote"   // make an admin a plain member
	ActTransfer = "transfer" // hand ownership to another member
	ActDelete   = "delete"   // delete the group
)

// Allowed reports whether actor may do act (to target, for the acts that name another member):
//
//	act       owner                 admin            member
//	leave     yes (a successor)     yes              yes
//	rename    yes                   yes              no
//	invite    yes                   yes              no
//	remove    any other member      plain members    no
//	promote   plain members         plain members    no
//	demote    admins                no               no
//	transfer  any other member      no               no
//	delete    yes                   no               no
//
// A former member or an invitee may do nothing; the target of remove, promote, demote and
// transfer must be a current member.
func Allowed(act string, actor, target store.Member) bool {
	if !actor.Active() {
		return false
	}
	other := target.Active() && target.UserID != actor.UserID
	switch act {
	case ActLeave:
		return true
	case ActRename, ActInvite:
		return IsAdmin(actor)
	case ActRemove:
		return other && (IsOwner(actor) || IsAdmin(actor) && target.Role == RoleMember)
	case ActPromote:
		return other && IsAdmin(actor) && target.Role == RoleMember
	case ActDemote:
		return other && IsOwner(actor) && target.Role == RoleAdmin
	case ActTransfer:
		return other && IsOwner(actor)
	case ActDelete:
		return IsOwner(actor)
	}
	return false
}

// Successor is who becomes owner when leaving, the owner, leaves: the longest-standing admin
// (the earliest start of the current membership; ties by user id), else the longest-standing
// member; "" if nobody else is left.
func Successor(members []store.Member, leaving string) string {
	var best *store.Member
	rank := func(m store.Member) int {
		if m.Role == RoleAdmin {
			return 0
		}
		return 1
	}
	for i := range members {
		m := &members[i]
		if !m.Active() || m.UserID == leaving {
			continue
		}
		if best == nil || rank(*m) < rank(*best) || rank(*m) == rank(*best) &&
			(m.JoinedSeq < best.JoinedSeq || m.JoinedSeq == best.JoinedSeq && m.UserID < best.UserID) {
			best = m
		}
	}
	if best == nil {
		return ""
	}
	return best.UserID
}

// Apply makes the store reflect the member event ev at seq: a created event also writes the
// group's record (unless it exists), a renamed one its name, a deleted one its deletion. It is
// idempotent, and an event older than what is recorded for a user changes nothing for that user,
// so replaying any range in stream order changes nothing.
func Apply(ctx context.Context, st store.Store, seq uint64, ev streams.ChatEvent) error {
	if ev.Kind != streams.KindMember || ev.Member == nil {
		return nil
	}
	c, conv := ev.Member, ev.ConversationID
	at := time.UnixMilli(ev.SentAt).UTC()
	if c.Action == streams.MemberCreated {
		if err := createGroup(ctx, st, ev); err != nil {
			return err
		}
	}
	each := func(f func(m *store.Member, found bool) bool) error {
		for _, u := range c.UserIDs {
			if err := update(ctx, st, conv, u, seq, f); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch c.Action {
	case streams.MemberCreated, streams.MemberAdded:
		err = each(func(m *store.Member, found bool) bool {
			role := RoleMember
			if c.Action == streams.MemberCreated && m.UserID == ev.SenderID {
				role = RoleOwner
			}
			return join(m, found, role, seq, at)
		})
	case streams.MemberAccepted:
		err = each(func(m *store.Member, found bool) bool {
			return found && m.Invited() && join(m, found, RoleMember, seq, at)
		})
	case streams.MemberInvited:
		err = each(func(m *store.Member, found bool) bool {
			switch {
			case !found:
				m.Role, m.JoinedSeq, m.LeftSeq, m.JoinedAt = RoleMember, seq, seq, at // the empty interval: sees nothing
			case m.Active():
				return false
			}
			m.InvitedSeq, m.InvitedBy = seq, ev.SenderID
			return true
		})
	case streams.MemberDeclined:
		err = each(func(m *store.Member, found bool) bool {
			if !found || !m.Invited() {
				return false
			}
			m.InvitedSeq, m.InvitedBy = 0, ""
			return true
		})
	case streams.MemberRemoved, streams.MemberLeft:
		err = each(func(m *store.Member, found bool) bool {
			if !found || !m.Active() {
				return false
			}
			m.LeftSeq, m.Role = seq, RoleMember
			return true
		})
		if err == nil && c.Owner != "" {
			err = setRole(ctx, st, conv, c.Owner, RoleOwner, seq)
		}
	case streams.MemberPromoted, streams.MemberDemoted:
		role := RoleAdmin
		if c.Action == streams.MemberDemoted {
			role = RoleMember
		}
		for _, u := range c.UserIDs {
			if err = setRole(ctx, st, conv, u, role, seq); err != nil {
				break
			}
		}
	case streams.MemberOwnerChanged:
		err = changeOwner(ctx, st, conv, c.Owner, seq)
	case streams.MemberDeleted:
		err = deleteGroup(ctx, st, conv, seq)
	case streams.MemberRenamed:
		err = rename(ctx, st, conv, c.Name)
	}
	if err != nil {
		return fmt.Errorf("apply %s at %d to %s: %w", c.Action, seq, conv, err)
	}
	return nil
}

// join starts a new interval for m at the event at seq (the previous one, if any, moves to
// Earlier); false if m is a current member already.
func join(m *store.Member, found bool, role string, seq uint64, at time.Time) bool {
	if found && m.Active() {
		return false
	}
	if found && m.LeftSeq > m.JoinedSeq {
		m.Earlier = append(m.Earlier, store.Interval{JoinedSeq: m.JoinedSeq, LeftSeq: m.LeftSeq})
	}
	m.Role, m.JoinedSeq, m.LeftSeq, m.JoinedAt = role, seq-1, 0, at
	m.InvitedSeq, m.InvitedBy = 0, ""
	return true
}

func rename(ctx context.Context, st store.Store, id, name string) error {
	conv, err := st.Conversation(ctx, id)
	if err != nil {
		return err
	}
	if conv.Name == name {
		return nil
	}
	conv.Name = name
	return st.PutConversation(ctx, conv)
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

// deleteGroup ends every membership and invitation at seq and marks the group deleted.
func deleteGroup(ctx context.Context, st store.Store, id string, seq uint64) error {
	ms, err := st.Members(ctx, id)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !m.Active() && !m.Invited() {
			continue
		}
		err := update(ctx, st, id, m.UserID, seq, func(m *store.Member, found bool) bool {
			if m.Active() {
				m.LeftSeq, m.Role = seq, RoleMember
			}
			m.InvitedSeq, m.InvitedBy = 0, ""
			return true
		})
		if err != nil {
			return err
		}
	}
	conv, err := st.Conversation(ctx, id)
	if err != nil || conv.DeletedSeq != 0 {
		return err
	}
	conv.DeletedSeq = seq
	return st.PutConversation(ctx, conv)
}

// changeOwner makes owner the owner and every other current owner an admin.
func changeOwner(ctx context.Context, st store.Store, id, owner string, seq uint64) error {
	ms, err := st.Members(ctx, id)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.UserID != owner && IsOwner(m) {
			if err := setRole(ctx, st, id, m.UserID, RoleAdmin, seq); err != nil {
				return err
			}
		}
	}
	return setRole(ctx, st, id, owner, RoleOwner, seq)
}

// setRole gives a current member role.
func setRole(ctx context.Context, st store.Store, conv, user, role string, seq uint64) error {
	return update(ctx, st, conv, user, seq, func(m *store.Member, found bool) bool {
		if !found || !m.Active() || m.Role == role {
			return false
		}
		m.Role = role
		return true
	})
}

// lastChange is the seq of the latest event applied to m.
func lastChange(m store.Member) uint64 {
	derived := m.JoinedSeq + 1
	if !m.Active() {
		derived = m.LeftSeq
	}
	return max(m.ChangedSeq, derived)
}

// update reads the record of (conv, user), lets f change it (found is false for a user never in
// the conversation: f fills in a new record) and writes it back if f reports a change, with
// ChangedSeq = seq. An event at or below the record's latest change is skipped.
func update(ctx context.Context, st store.Store, conv, user string, seq uint64, f func(m *store.Member, found bool) bool) error {
	m, err := st.Member(ctx, conv, user)
	found := err == nil
	switch {
	case found && lastChange(m) >= seq:
		return nil // already reflects this event or a later one
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("member %s: %w", user, err)
	case !found:
		m = store.Member{ConversationID: conv, UserID: user}
	}
	m.Earlier = slices.Clone(m.Earlier)
	if !f(&m, found) {
		return nil
	}
	m.ChangedSeq = seq
	if err := st.PutMember(ctx, m); err != nil {
		return fmt.Errorf("member %s: %w", user, err)
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
