package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/oklog/ulid/v2"

	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Group error codes.
const (
	CodeGroupFull       protocol.Code = "group_full"       // the change would exceed store.MaxGroupMembers
	CodeNotAGroup       protocol.Code = "not_a_group"      // a group operation on a direct conversation
	CodeInvalidName     protocol.Code = "invalid_name"     // not 1-100 visible code points
	CodeForbidden       protocol.Code = "forbidden"        // a member may not do this (only the owner removes others)
	CodeMemberNotFound  protocol.Code = "member_not_found" // the user is not a current member
	CodeAlreadyMember   protocol.Code = "already_member"   // every named user is already a member
	CodeMembershipRaced protocol.Code = "membership_busy"  // membership kept changing; retry
)

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
// the owner; the "created" member event is the group's first event.
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
	users = append([]string{me}, users...)
	if len(users) > store.MaxGroupMembers {
		return errGroupFull(len(users))
	}
	// The created event is the group's creation: applying it writes the conversation record.
	id := "g" + ulid.Make().String()
	seq, err := s.changeMembers(c, id, func([]store.Member) (streams.MemberChange, error) {
		return streams.MemberChange{Action: streams.MemberCreated, UserIDs: users, Name: req.Name}, nil
	})
	if err != nil {
		return err
	}
	conv, err := s.store.Conversation(c.UserContext(), id)
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	slices.Sort(users)
	return c.Status(http.StatusCreated).JSON(membershipAnswer{conversationOut(conv, users), seq})
}

// renameGroup: PATCH /v1/conversations/:id {name} -> {conversation, seq}; any current member.
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
	seq, err := s.changeMembers(c, conv.ID, func([]store.Member) (streams.MemberChange, error) {
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

// addMembers: POST /v1/conversations/:id/members {user_ids} -> {conversation, seq}; any current
// member may add. Users already in the group are skipped; 409 group_full past the limit.
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
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		active := membership.Active(members)
		added := slices.DeleteFunc(slices.Clone(users), func(u string) bool {
			return slices.ContainsFunc(active, func(m store.Member) bool { return m.UserID == u })
		})
		if len(added) == 0 {
			return streams.MemberChange{}, errorf(http.StatusConflict, CodeAlreadyMember, "every named user is already a member")
		}
		if n := len(active) + len(added); n > store.MaxGroupMembers {
			return streams.MemberChange{}, errGroupFull(n)
		}
		return streams.MemberChange{Action: streams.MemberAdded, UserIDs: added}, nil
	})
	if err != nil {
		return err
	}
	return s.membershipAnswer(c, conv, seq)
}

// removeMember: DELETE /v1/conversations/:id/members/:user -> {conversation, seq}. Removing
// yourself is leaving (any member); removing someone else takes the owner.
func (s *Server) removeMember(c *fiber.Ctx) error {
	return s.leaveOrRemove(c, c.Params("user"))
}

// leaveGroup: POST /v1/conversations/:id/leave -> {conversation, seq}.
func (s *Server) leaveGroup(c *fiber.Ctx) error {
	return s.leaveOrRemove(c, callerID(c))
}

func (s *Server) leaveOrRemove(c *fiber.Ctx, target string) error {
	conv, err := s.groupOfCaller(c)
	if err != nil {
		return err
	}
	me := callerID(c)
	action := streams.MemberRemoved
	if target == me {
		action = streams.MemberLeft
	}
	change := streams.MemberChange{Action: action, UserIDs: []string{target}}
	seq, err := s.changeMembers(c, conv.ID, func(members []store.Member) (streams.MemberChange, error) {
		var caller, victim *store.Member
		for i := range members {
			switch members[i].UserID {
			case me:
				caller = &members[i]
			case target:
				victim = &members[i]
			}
		}
		switch {
		case caller == nil || !caller.Active():
			return change, errNotMember
		case target == me:
			return change, nil
		case caller.Role != membership.RoleOwner:
			return change, errorf(http.StatusForbidden, CodeForbidden, "only the group's owner removes other members")
		case victim == nil || !victim.Active():
			return change, errorf(http.StatusNotFound, CodeMemberNotFound, "that user is not a member")
		}
		return change, nil
	})
	if err != nil {
		return err
	}
	return s.membershipAnswer(c, conv, seq)
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
	members, err := s.activeMembers(c.UserContext(), conv.ID)
	if err != nil {
		return err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
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
