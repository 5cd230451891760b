package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// Group error codes.
const (
	CodeGroupFull       protocol.Code = "group_full"       // the change would exceed store.MaxGroupMembers
	CodeNotAGroup       protocol.Code = "not_a_group"      // a group operation on a direct conversation
	CodeInvalidName     protocol.Code = "invalid_name"     // not 1-100 visible code points
	CodeForbidden       protocol.Code = "forbidden"        // the caller's role may not do this (membership.Allowed)
	CodeMemberNotFound  protocol.Code = "member_not_found" // the user is not a current member (or invitee)
	CodeAlreadyMember   protocol.Code = "already_member"   // every named user is already a member or invited
	CodeMembershipRaced protocol.Code = "membership_busy"  // membership kept changing; retry
	CodeInvalidRole     protocol.Code = "invalid_role"     // a role other than "admin" or "member"
)

var errForbidden = errorf(http.StatusForbidden, CodeForbidden, "your role in this group may not do that")

const maxGroupName = 100

type groupRequest struct {
	Name      string   `json:"name"`
	MemberIDs []string `json:"member_ids"`
}

type membershipAnswer struct {
	Conversation conversationJSON `json:"conversation"`
	// Seq is the position of the membership event in the conversation.
	Seq uint64 `json:"seq"`
}

// createGroup: POST /v1/groups {name, member_ids} -> 201 {conversation, seq}. The caller becomes
// the owner and only member; the "created" member event is the group's first event, and an
// "invited" event after it invites member_ids (seq is the last of the two).
func (s *Server) createGroup(c *fiber.Ctx) error {
	var req groupRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if err := validateGroupName(req.Name); err != nil {
		return err
	}
	me := callerID(c)
	users, err := s.existingUsers(c, req.MemberIDs, me)
	if err != nil {
		return err
	}
	if len(users)+1 > store.MaxGroupMembers {
		return errGroupFull(len(users) + 1)
	}
	// The created event is the group's creation: applying it writes the conversation record.
	id := "g" + ulid.Make().String()
	seq, err := s.changeMembers(c, id, func([]store.Member) (streams.MemberChange, error) {
		return streams.MemberChange{Action: streams.MemberCreated, UserIDs: []string{me}, Name: req.Name}, nil
	})
	if err != nil {
		return err
	}
	if len(users) > 0 {
		if seq, err = s.changeMembers(c, id, func([]store.Member) (streams.MemberChange, error) {
			return streams.MemberChange{Action: streams.MemberInvited, UserIDs: users}, nil
		}); err != nil {
			return err
		}
	}
	conv, err := s.store.Conversation(c.UserContext(), id)
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	return c.Status(http.StatusCreated).JSON(membershipAnswer{conversationOut(conv, []string{me}), seq})
}

// renameGroup: PATCH /v1/conversations/:id {name} -> {conversation, seq}; the owner or an admin.
func (s *Server) renameGroup(c *fiber.Ctx) error {
	var req groupRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	conv, err := s.groupOfCaller(c)
	if err != nil {
		return err
	}
	if err := validateGroupName(req.Name); err != nil {
		return err
	}
	me := callerID(c)
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		if !membership.Allowed(membership.ActRename, find(members, me), store.Member{}) {
			return streams.MemberChange{}, errForbidden
		}
		return streams.MemberChange{Action: streams.MemberRenamed, Name: req.Name}, nil
	})
	if err != nil {
		return err
	}
	conv.Name = req.Name
	return s.membershipAnswer(c, conv, seq)
}

type addMembersRequest struct {
	UserIDs []string `json:"user_ids"`
}

// addMembers: POST /v1/conversations/:id/members {user_ids} -> {conversation, seq}; the owner or
// an admin invites: each named user becomes an invitee, who joins by accepting (acceptInvitation).
// Users already members or invited are skipped; 409 already_member if that is all of them, 409
// group_full if the members and the invitees would be more than the limit.
func (s *Server) addMembers(c *fiber.Ctx) error {
	var req addMembersRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	conv, err := s.groupOfCaller(c)
	if err != nil {
		return err
	}
	users, err := s.existingUsers(c, req.UserIDs, "")
	if err != nil {
		return err
	}
	me := callerID(c)
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		if !membership.Allowed(membership.ActInvite, find(members, me), store.Member{}) {
			return streams.MemberChange{}, errForbidden
		}
		taken := 0
		for _, m := range members {
			if m.Active() || m.Invited() {
				taken++
			}
		}
		invited := slices.DeleteFunc(slices.Clone(users), func(u string) bool {
			m := find(members, u)
			return m.Active() || m.Invited()
		})
		if len(invited) == 0 {
			return streams.MemberChange{}, errorf(http.StatusConflict, CodeAlreadyMember, "every named user is already a member or invited")
		}
		if n := taken + len(invited); n > store.MaxGroupMembers {
			return streams.MemberChange{}, errGroupFull(n)
		}
		return streams.MemberChange{Action: streams.MemberInvited, UserIDs: invited}, nil
	})
	if err != nil {
		return err
	}
	return s.membershipAnswer(c, conv, seq)
}

// find returns user's record among members; for a user never in the group, a record that is
// neither current nor invited and sees nothing (the empty interval 1..1), so it has no rights.
func find(members []store.Member, user string) store.Member {
	for _, m := range members {
		if m.UserID == user {
			return m
		}
	}
	return store.Member{UserID: user, JoinedSeq: 1, LeftSeq: 1}
}

// removeMember: DELETE /v1/conversations/:id/members/:user -> {conversation, seq}. Removing
// yourself is leaving (any member); removing someone else takes the owner (anyone) or an admin
// (plain members); for an invitee, the owner or an admin withdraws the invitation.
func (s *Server) removeMember(c *fiber.Ctx) error {
	return s.leaveOrRemove(c, c.Params("user"))
}

// leaveGroup: POST /v1/conversations/:id/leave -> {conversation, seq}. When the owner leaves,
// the longest-standing admin (else member) becomes the owner, in the same event.
func (s *Server) leaveGroup(c *fiber.Ctx) error {
	return s.leaveOrRemove(c, callerID(c))
}

func (s *Server) leaveOrRemove(c *fiber.Ctx, target string) error {
	conv, err := s.groupOfCaller(c)
	if err != nil {
		return err
	}
	me := callerID(c)
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		caller, victim := find(members, me), find(members, target)
		switch {
		case !caller.Active():
			return streams.MemberChange{}, errNotMember
		case target == me:
			change := streams.MemberChange{Action: streams.MemberLeft, UserIDs: []string{me}}
			if membership.IsOwner(caller) {
				change.Owner = membership.Successor(members, me)
			}
			return change, nil
		case !victim.Active() && victim.Invited():
			if !membership.Allowed(membership.ActInvite, caller, store.Member{}) {
				return streams.MemberChange{}, errForbidden
			}
			return streams.MemberChange{Action: streams.MemberDeclined, UserIDs: []string{target}}, nil
		case !victim.Active():
			return streams.MemberChange{}, errorf(http.StatusNotFound, CodeMemberNotFound, "that user is not a member")
		case !membership.Allowed(membership.ActRemove, caller, victim):
			return streams.MemberChange{}, errForbidden
		}
		return streams.MemberChange{Action: streams.MemberRemoved, UserIDs: []string{target}}, nil
	})
	if err != nil {
		return err
	}
	return s.membershipAnswer(c, conv, seq)
}

type roleRequest struct {
	Role string `json:"role"`
}

// setRole: PUT /v1/conversations/:id/members/:user/role {role} -> {conversation, seq}: "admin"
// promotes a member (the owner or an admin), "member" demotes an admin (the owner).
func (s *Server) setRole(c *fiber.Ctx) error {
	var req roleRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	act, action := membership.ActPromote, streams.MemberPromoted
	switch req.Role {
	case membership.RoleAdmin:
	case membership.RoleMember:
		act, action = membership.ActDemote, streams.MemberDemoted
	default:
		return errorf(http.StatusBadRequest, CodeInvalidRole, `role must be "admin" or "member"; ownership moves with POST /v1/conversations/{id}/owner`)
	}
	return s.actOnMember(c, c.Params("user"), act, func(target string) streams.MemberChange {
		return streams.MemberChange{Action: action, UserIDs: []string{target}}
	})
}

type ownerRequest struct {
	UserID string `json:"user_id"`
}

// transferOwnership: POST /v1/conversations/:id/owner {user_id} -> {conversation, seq}; the
// owner hands the group to another current member and becomes an admin.
func (s *Server) transferOwnership(c *fiber.Ctx) error {
	var req ownerRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	return s.actOnMember(c, req.UserID, membership.ActTransfer, func(target string) streams.MemberChange {
		return streams.MemberChange{Action: streams.MemberOwnerChanged, Owner: target}
	})
}

// actOnMember publishes the change made by the caller to the current member target, if the
// caller's role allows act on target's.
func (s *Server) actOnMember(c *fiber.Ctx, target, act string, change func(target string) streams.MemberChange) error {
	conv, err := s.groupOfCaller(c)
	if err != nil {
		return err
	}
	me := callerID(c)
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		caller, victim := find(members, me), find(members, target)
		switch {
		case !caller.Active():
			return streams.MemberChange{}, errNotMember
		case !victim.Active():
			return streams.MemberChange{}, errorf(http.StatusNotFound, CodeMemberNotFound, "that user is not a member")
		case !membership.Allowed(act, caller, victim):
			return streams.MemberChange{}, errForbidden
		}
		return change(target), nil
	})
	if err != nil {
		return err
	}
	return s.membershipAnswer(c, conv, seq)
}

// deleteGroup: DELETE /v1/conversations/:id -> {conversation, seq}; the owner deletes the group.
// Every member is told by the "deleted" event, which ends every membership and invitation: no
// one can send, add or join any more. The history is kept; each former member keeps reading
// what they saw, as after leaving.
func (s *Server) deleteGroup(c *fiber.Ctx) error {
	conv, err := s.groupOfCaller(c)
	if err != nil {
		return err
	}
	me := callerID(c)
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		if !membership.Allowed(membership.ActDelete, find(members, me), store.Member{}) {
			return streams.MemberChange{}, errForbidden
		}
		return streams.MemberChange{Action: streams.MemberDeleted}, nil
	})
	if err != nil {
		return err
	}
	return s.membershipAnswer(c, conv, seq)
}

// acceptInvitation: POST /v1/conversations/:id/accept -> {conversation, seq}; the invitee joins
// and sees the group's events from the accepted event on. 404 not_member without an invitation,
// 409 group_full if the group filled up since.
func (s *Server) acceptInvitation(c *fiber.Ctx) error {
	return s.answerInvitation(c, streams.MemberAccepted)
}

// declineInvitation: POST /v1/conversations/:id/decline -> {seq}; the invitation ends.
func (s *Server) declineInvitation(c *fiber.Ctx) error {
	return s.answerInvitation(c, streams.MemberDeclined)
}

func (s *Server) answerInvitation(c *fiber.Ctx, action string) error {
	m, err := s.member(c, false)
	if err != nil {
		return err
	}
	me := callerID(c)
	seq, err := s.changeMembers(c, m.ConversationID, func(members []store.Member) (streams.MemberChange, error) {
		mine := find(members, me)
		if mine.Active() || !mine.Invited() {
			return streams.MemberChange{}, errNotMember
		}
		if n := len(membership.Active(members)) + 1; action == streams.MemberAccepted && n > store.MaxGroupMembers {
			return streams.MemberChange{}, errGroupFull(n)
		}
		return streams.MemberChange{Action: action, UserIDs: []string{me}}, nil
	})
	if err != nil {
		return err
	}
	conv, err := s.store.Conversation(c.UserContext(), m.ConversationID)
	if err != nil {
		return fmt.Errorf("conversation %s: %w", m.ConversationID, err)
	}
	if action == streams.MemberDeclined {
		return c.JSON(fiber.Map{"seq": seq})
	}
	return s.membershipAnswer(c, conv, seq)
}

type invitationOut struct {
	Conversation conversationJSON `json:"conversation"`
	InvitedBy    string           `json:"invited_by"`
	InvitedSeq   uint64           `json:"invited_seq"`
}

// listInvitations: GET /v1/invitations -> {invitations}: the caller's pending group invitations,
// newest first, each with the group (name and current members) and who invited.
func (s *Server) listInvitations(c *fiber.Ctx) error {
	ctx := c.UserContext()
	mine, err := s.store.MembershipsOf(ctx, callerID(c))
	if err != nil {
		return fmt.Errorf("invitations: memberships: %w", err)
	}
	out := []invitationOut{}
	for _, m := range mine {
		if m.Active() || !m.Invited() {
			continue
		}
		conv, err := s.store.Conversation(ctx, m.ConversationID)
		if err != nil {
			return fmt.Errorf("invitations: conversation %s: %w", m.ConversationID, err)
		}
		ids, err := s.activeMemberIDs(ctx, conv.ID)
		if err != nil {
			return err
		}
		out = append(out, invitationOut{Conversation: conversationOut(conv, ids), InvitedBy: m.InvitedBy, InvitedSeq: m.InvitedSeq})
	}
	slices.SortFunc(out, func(a, b invitationOut) int { return cmp.Compare(b.InvitedSeq, a.InvitedSeq) })
	return c.JSON(fiber.Map{"invitations": out})
}

// changeMembers publishes the membership change decide computes (membership.Change serializes
// the changes of one conversation) and maps its refusals to answers.
func (s *Server) changeMembers(c *fiber.Ctx, conv string, decide membership.Decide) (uint64, error) {
	seq, err := membership.Change(c.UserContext(), s.js, s.store, conv, callerID(c), decide)
	var apiErr *apiError
	switch {
	case errors.As(err, &apiErr):
		return 0, apiErr
	case errors.Is(err, membership.ErrConflict):
		return 0, errorf(http.StatusServiceUnavailable, CodeMembershipRaced, "membership kept changing; retry")
	case err != nil:
		return 0, fmt.Errorf("change members of %s: %w", conv, err)
	}
	return seq, nil
}

// groupOfCaller resolves :id to a group the caller is a current member of.
func (s *Server) groupOfCaller(c *fiber.Ctx) (store.Conversation, error) {
	m, err := s.member(c, true)
	if err != nil {
		return store.Conversation{}, err
	}
	conv, err := s.store.Conversation(c.UserContext(), m.ConversationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Conversation{}, errNotMember
	case err != nil:
		return store.Conversation{}, fmt.Errorf("conversation %s: %w", m.ConversationID, err)
	case conv.Kind != store.Group:
		return store.Conversation{}, errorf(http.StatusBadRequest, CodeNotAGroup, "direct conversations have fixed members")
	}
	return conv, nil
}

func (s *Server) membershipAnswer(c *fiber.Ctx, conv store.Conversation, seq uint64) error {
	ids, err := s.activeMemberIDs(c.UserContext(), conv.ID)
	if err != nil {
		return err
	}
	fresh, err := s.store.Conversation(c.UserContext(), conv.ID)
	if err == nil {
		conv = fresh
	}
	return c.JSON(membershipAnswer{conversationOut(conv, ids), seq})
}

// existingUsers dedupes ids (dropping skip) and checks that every one is a user.
func (s *Server) existingUsers(c *fiber.Ctx, ids []string, skip string) ([]string, error) {
	if len(ids) > store.MaxGroupMembers {
		return nil, errGroupFull(len(ids))
	}
	var out []string
	for _, id := range ids {
		if id == skip || slices.Contains(out, id) {
			continue
		}
		if !streams.ValidToken(id) {
			return nil, errorf(http.StatusNotFound, CodeUserNotFound, "no such user: %q", truncate(id))
		}
		if _, err := s.store.UserByID(c.UserContext(), id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, errorf(http.StatusNotFound, CodeUserNotFound, "no such user: %s", id)
			}
			return nil, fmt.Errorf("user %s: %w", id, err)
		}
		out = append(out, id)
	}
	return out, nil
}

func validateGroupName(name string) error {
	n := utf8.RuneCountInString(name)
	if !utf8.ValidString(name) || strings.TrimSpace(name) == "" || n > maxGroupName || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errorf(http.StatusBadRequest, CodeInvalidName, "name must be 1-%d visible characters", maxGroupName)
	}
	return nil
}

func errGroupFull(n int) error {
	return errorf(http.StatusConflict, CodeGroupFull, "a group has at most %d members; this would make %d", store.MaxGroupMembers, n)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
