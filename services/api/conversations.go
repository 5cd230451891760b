package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/natter-chat/natter/pkg/membership"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// listConcurrency bounds the conversations GET /v1/conversations summarises at once.
const listConcurrency = 16

// DirectConversationID is the id of the direct conversation between users a and b, the same
// whichever of them asks: "d" and the first 25 characters of the lower-case base32 SHA-256 of
// the two ids sorted and joined by "|". It passes streams.ValidToken and can never equal a ULID
// (whose first character is 0-7).
func DirectConversationID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	sum := sha256.Sum256([]byte(a + "|" + b))
	return "d" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:25]
}

// conversationJSON is a conversation as clients see it.
type conversationJSON struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"` // RFC 3339, UTC
	// Members are the user ids of the current members (omitted where a richer list is given).
	Members []string `json:"members,omitempty"`
	// DeletedSeq is the seq of the event that deleted the group; omitted while it exists.
	DeletedSeq uint64 `json:"deleted_seq,omitempty"`
	// Request is set while a direct conversation waits for its recipient's consent.
	Request *requestJSON `json:"request,omitempty"`
}

func conversationOut(c store.Conversation, members []string) conversationJSON {
	return conversationJSON{ID: c.ID, Kind: string(c.Kind), Name: c.Name, CreatedAt: rfc3339(c.CreatedAt), Members: members,
		DeletedSeq: c.DeletedSeq}
}

type conversationEnvelope struct {
	Conversation conversationJSON `json:"conversation"`
}

type openDirectRequest struct {
	UserID string `json:"user_id"`
}

// openDirect: POST /v1/conversations/direct {user_id} -> {conversation}: 201 when this request
// created it, 200 when it existed. Every write is idempotent and the id is derived from the
// two users, so opens from both sides, concurrent or repeated, meet in one conversation.
func (s *Server) openDirect(c *fiber.Ctx) error {
	var req openDirectRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	me := callerID(c)
	switch {
	case req.UserID == "":
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "user_id is required")
	case req.UserID == me:
		return errorf(http.StatusBadRequest, CodeSelfConversation, "a direct conversation needs another user")
	case !streams.ValidToken(req.UserID):
		return errorf(http.StatusNotFound, CodeUserNotFound, "no such user")
	}
	ctx := c.UserContext()
	if _, err := s.store.UserByID(ctx, req.UserID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, CodeUserNotFound, "no such user")
		}
		return fmt.Errorf("open direct: user by id: %w", err)
	}
	conv, created, err := s.ensureDirect(ctx, me, req.UserID)
	if err != nil {
		return err
	}
	if !created {
		// Opening a conversation someone asked you into is saying yes.
		if r, ok := s.consent.Request(conv.ID); ok && r.To == me {
			if err := s.answer(ctx, conv.ID, me, streams.StateDirectAccepted); err != nil {
				return err
			}
		}
	}
	users := []string{me, req.UserID}
	slices.Sort(users)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	out := conversationOut(conv, users)
	out.Request = s.requestOut(conv.ID, me)
	return c.Status(status).JSON(conversationEnvelope{out})
}

// ensureDirect makes sure the direct conversation between by and other exists, as a request of
// by to other (consent): its one direct_opened event (expected last subject sequence 0: opens from both sides, concurrent or
// repeated, put one event on the stream) applied to the store, which writes whatever is missing
// of the record and each user's membership (JoinedSeq 0: both see all of it) and leaves what
// exists alone. created reports whether this call's event was the one.
func (s *Server) ensureDirect(ctx context.Context, by, other string) (conv store.Conversation, created bool, err error) {
	id := DirectConversationID(by, other)
	users := []string{by, other}
	slices.Sort(users)
	ev := streams.StateEvent{Kind: streams.StateDirectOpened, At: time.Now().UnixMilli(),
		Direct: &streams.DirectState{ConversationID: id, UserIDs: users, CreatedBy: by, Request: true}}
	if conv, err = s.store.Conversation(ctx, id); err == nil {
		// Complete a conversation whose members are missing (an open cut short; the projector
		// repairs it too) from the event on the stream, not from this request.
		return conv, false, s.completeDirect(ctx, id)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Conversation{}, false, fmt.Errorf("open direct %s: conversation: %w", id, err)
	}
	seq, err := projection.Record(ctx, s.js, s.store, ev, jetstream.WithExpectLastSequencePerSubject(0))
	switch {
	case err == nil:
		created = true
		// The request is in this process's consent mirror, and settled, before the caller can
		// send: every fanout, and this process's gateway, hold the messages from the first one.
		if err := s.settleConsent(ctx, ev.Kind, seq, time.Now()); err != nil {
			return store.Conversation{}, false, fmt.Errorf("open direct %s: %w", id, err)
		}
	case natsx.IsWrongLastSequence(err): // opened by someone else since: apply theirs
		if err := s.completeDirect(ctx, id); err != nil {
			return store.Conversation{}, false, err
		}
	default:
		return store.Conversation{}, false, fmt.Errorf("open direct %s: %w", id, err)
	}
	if conv, err = s.store.Conversation(ctx, id); err != nil {
		return store.Conversation{}, false, fmt.Errorf("open direct %s: conversation: %w", id, err)
	}
	return conv, created, nil
}

// completeDirect applies the direct conversation's event from the stream unless both
// memberships are already in the store.
func (s *Server) completeDirect(ctx context.Context, id string) error {
	ms, err := s.store.Members(ctx, id)
	if err != nil {
		return fmt.Errorf("open direct %s: members: %w", id, err)
	}
	if len(ms) >= 2 {
		return nil
	}
	stream, err := s.js.Stream(ctx, streams.StateStream)
	if err != nil {
		return fmt.Errorf("open direct %s: %w", id, err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, streams.DirectSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // opened before direct conversations were events: the store is all there is
	}
	if err != nil {
		return fmt.Errorf("open direct %s: %w", id, err)
	}
	if err := projection.Apply(ctx, s.store, raw.Subject, raw.Sequence, raw.Data); err != nil {
		return fmt.Errorf("open direct %s: %w", id, err)
	}
	return nil
}

// summaryJSON is one entry of the conversation list.
type summaryJSON struct {
	conversationJSON
	// LastMessage is the newest event the caller may see; null if there is none.
	LastMessage *protocol.Event `json:"last_message"`
	// ReadSeq is the caller's read watermark; Unread counts the others' messages after it
	// (at most MaxUnread).
	ReadSeq uint64 `json:"read_seq"`
	Unread  int    `json:"unread"`
}

// MaxUnread caps unread counts; clients show "999+".
const MaxUnread = 999

// listConversations: GET /v1/conversations -> {conversations} for the caller's current
// memberships, the one with the newest event first; those without events last, newest first.
func (s *Server) listConversations(c *fiber.Ctx) error {
	ctx := c.UserContext()
	memberships, err := s.store.MembershipsOf(ctx, callerID(c))
	if err != nil {
		return fmt.Errorf("list conversations: memberships: %w", err)
	}
	me := callerID(c)
	memberships = slices.DeleteFunc(memberships, func(m store.Member) bool {
		if !m.Active() {
			return true
		}
		// No requests from someone the caller blocked.
		r, ok := s.consent.Request(m.ConversationID)
		return ok && r.To == me && s.consent.Blocked(me, r.From)
	})

	out := make([]*summaryJSON, len(memberships))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listConcurrency)
	for i, m := range memberships {
		g.Go(func() error {
			sum, err := s.summary(gctx, m)
			out[i] = sum
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	out = slices.DeleteFunc(out, func(s *summaryJSON) bool { return s == nil })
	slices.SortFunc(out, func(a, b *summaryJSON) int {
		if c := cmp.Compare(lastSeq(b), lastSeq(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.CreatedAt, a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if out == nil {
		out = []*summaryJSON{}
	}
	return c.JSON(fiber.Map{"conversations": out})
}

func lastSeq(s *summaryJSON) uint64 {
	if s.LastMessage == nil {
		return 0
	}
	return s.LastMessage.Seq
}

// summary describes one conversation for member m; nil if its record is missing (a membership
// written before its conversation, which the writer's retry completes).
func (s *Server) summary(ctx context.Context, m store.Member) (*summaryJSON, error) {
	conv, err := s.store.Conversation(ctx, m.ConversationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("summary %s: conversation: %w", m.ConversationID, err)
	}
	ids, err := s.activeMemberIDs(ctx, conv.ID)
	if err != nil {
		return nil, err
	}
	last, err := s.visiblePage(ctx, m, store.Page{Limit: 4})
	if err != nil {
		return nil, fmt.Errorf("summary %s: last message: %w", conv.ID, err)
	}
	sum := &summaryJSON{conversationJSON: conversationOut(conv, ids)}
	sum.Request = s.requestOut(conv.ID, m.UserID)
	for _, msg := range last { // the newest the caller sees: other members' hides are theirs
		if view, ok := timeline.View(msg, m.UserID); ok && timeline.Sees(m, msg) {
			ev := timeline.Event(view)
			sum.LastMessage = &ev
			break
		}
	}
	last = last[:min(len(last), 1)]
	w, err := s.store.Watermark(ctx, conv.ID, m.UserID)
	if err != nil {
		return nil, fmt.Errorf("summary %s: watermark: %w", conv.ID, err)
	}
	sum.ReadSeq = w.Read
	if len(last) == 1 && last[0].Seq > max(w.Read, m.JoinedSeq) {
		unread := func(x store.Message) bool {
			return x.SenderID != m.UserID && !x.HiddenTo(m.UserID) && s.consent.SeesMessage(m.UserID, x.SenderID, conv.ID)
		}
		if sum.Unread, err = s.timeline.CountAfterFunc(ctx, conv.ID, max(w.Read, m.JoinedSeq), unread, MaxUnread); err != nil {
			return nil, fmt.Errorf("summary %s: unread: %w", conv.ID, err)
		}
	}
	return sum, nil
}

func (s *Server) activeMembers(ctx context.Context, conversationID string) ([]store.Member, error) {
	all, err := s.store.Members(ctx, conversationID)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", conversationID, err)
	}
	return membership.Active(all), nil
}

// activeMemberIDs is the user ids of the current members of a conversation, as conversationOut
// lists them.
func (s *Server) activeMemberIDs(ctx context.Context, conversationID string) ([]string, error) {
	members, err := s.activeMembers(ctx, conversationID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	return ids, nil
}

// member returns the caller's membership of the conversation named by the :id parameter. Unless
// the caller has one (a current one when active is set), the answer is errNotMember, the same
// for a malformed id, a conversation that does not exist and one the caller is not in.
func (s *Server) member(c *fiber.Ctx, active bool) (store.Member, error) {
	id := c.Params("id")
	if !streams.ValidToken(id) {
		return store.Member{}, errNotMember
	}
	m, err := s.store.Member(c.UserContext(), id, callerID(c))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Member{}, errNotMember
	case err != nil:
		return store.Member{}, fmt.Errorf("membership of %s: %w", id, err)
	case active && !m.Active():
		return store.Member{}, errNotMember
	}
	return m, nil
}

type memberJSON struct {
	UserID    string `json:"user_id"`
	Role      string `json:"role"` // owner, admin or member
	JoinedSeq uint64 `json:"joined_seq"`
}

// invitationJSON is a pending invitation to a group.
type invitationJSON struct {
	UserID     string `json:"user_id"`
	InvitedBy  string `json:"invited_by"`
	InvitedSeq uint64 `json:"invited_seq"`
}

// getConversation: GET /v1/conversations/:id -> {conversation, members, invitations} for current
// members; 404 not_member for everyone else, former members and invitees included.
func (s *Server) getConversation(c *fiber.Ctx) error {
	m, err := s.member(c, true)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	conv, err := s.store.Conversation(ctx, m.ConversationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotMember
	case err != nil:
		return fmt.Errorf("get conversation %s: %w", m.ConversationID, err)
	}
	all, err := s.store.Members(ctx, conv.ID)
	if err != nil {
		return fmt.Errorf("get conversation %s: members: %w", conv.ID, err)
	}
	out, invited := []memberJSON{}, []invitationJSON{}
	for _, mm := range all {
		switch {
		case mm.Active():
			out = append(out, memberJSON{UserID: mm.UserID, Role: mm.Role, JoinedSeq: mm.JoinedSeq})
		case mm.Invited():
			invited = append(invited, invitationJSON{UserID: mm.UserID, InvitedBy: mm.InvitedBy, InvitedSeq: mm.InvitedSeq})
		}
	}
	cj := conversationOut(conv, nil)
	cj.Request = s.requestOut(conv.ID, m.UserID)
	return c.JSON(fiber.Map{"conversation": cj, "members": out, "invitations": invited})
}
