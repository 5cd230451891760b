package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// Consent, blocks and presence settings are STATE events (streams.StateDirectAccepted, …);
// the API publishes them, waits until its consent mirror has applied them (so the caller's
// next request, and every component of this process, sees the change) and answers.

var errNotARequest = errorf(http.StatusConflict, CodeNotARequest, "the conversation is not a request made to you")

// requestJSON describes a direct conversation the recipient has not accepted yet.
type requestJSON struct {
	From    string `json:"from"`              // who opened it
	To      string `json:"to"`                // who is asked
	Ignored bool   `json:"ignored,omitempty"` // the recipient ignored it (only they are told)
}

// requestOut is the open request of conversation id as viewer may see it; nil once accepted.
func (s *Server) requestOut(id, viewer string) *requestJSON {
	r, ok := s.consent.Request(id)
	if !ok {
		return nil
	}
	return &requestJSON{From: r.From, To: r.To, Ignored: r.Ignored && viewer == r.To}
}

// record publishes a consent event (with opts, e.g. a compare-and-set on its subject) and waits
// until this process's mirror has applied it and every fanout routes by it (settled).
func (s *Server) record(ctx context.Context, ev streams.StateEvent, opts ...jetstream.PublishOpt) error {
	seq, err := projection.Record(ctx, s.js, s.store, ev, opts...)
	if err != nil {
		return err
	}
	return s.settleConsent(ctx, ev.Kind, seq, time.Now())
}

// settleConsent waits until the consent event at STATE seq, acknowledged as stored at stored,
// is applied by this process's mirror and has settled (streams.Settle): messages sent after
// the caller answers are routed by it, by this process's fanout and every other.
func (s *Server) settleConsent(ctx context.Context, kind string, seq uint64, stored time.Time) error {
	if err := s.consent.WaitFor(ctx, seq); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	if err := streams.Settle(ctx, stored, s.cfg.BarrierWindow); err != nil {
		return fmt.Errorf("%s: settle: %w", kind, err)
	}
	return nil
}

// directState is the consent of direct conversation id as the last event of its STATE subject
// says: requester and recipient of an open request (both empty once accepted, and for a
// conversation opened before requests existed), whether it was ignored, and that event's seq
// (0: none) for a compare-and-set.
type directState struct {
	from, to string
	ignored  bool
	seq      uint64
	users    []string
}

func (s *Server) directState(ctx context.Context, id string) (directState, error) {
	stream, err := s.js.Stream(ctx, streams.StateStream)
	if err != nil {
		return directState{}, fmt.Errorf("direct %s: %w", id, err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, streams.DirectSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return directState{}, nil
	}
	if err != nil {
		return directState{}, fmt.Errorf("direct %s: %w", id, err)
	}
	ev, err := streams.DecodeStateEvent(raw.Subject, raw.Data)
	if err != nil {
		return directState{}, fmt.Errorf("direct %s at %d: %w", id, raw.Sequence, err)
	}
	d := ev.Direct
	st := directState{seq: raw.Sequence, users: d.UserIDs}
	other := func(u string) string {
		if d.UserIDs[0] == u {
			return d.UserIDs[1]
		}
		return d.UserIDs[0]
	}
	switch {
	case ev.Kind == streams.StateDirectOpened && d.Request:
		st.from, st.to = d.CreatedBy, other(d.CreatedBy)
	case ev.Kind == streams.StateDirectIgnored:
		st.from, st.to, st.ignored = other(d.By), d.By, true
	}
	return st, nil
}

// answer records me's answer (direct_accepted or direct_ignored) to the request of direct
// conversation id. Accepting what is accepted, or ignoring what is ignored, changes nothing;
// anything else that is not a request made to me is errNotARequest.
func (s *Server) answer(ctx context.Context, id, me, kind string) error {
	for attempt := 0; attempt < 8; attempt++ {
		st, err := s.directState(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case st.to == "" && kind == streams.StateDirectAccepted:
			return nil // accepted already (or never a request)
		case st.to != me:
			return errNotARequest
		case st.ignored && kind == streams.StateDirectIgnored:
			return nil
		}
		ev := streams.StateEvent{Kind: kind, At: time.Now().UnixMilli(),
			Direct: &streams.DirectState{ConversationID: id, UserIDs: st.users, By: me}}
		err = s.record(ctx, ev, jetstream.WithExpectLastSequencePerSubject(st.seq))
		if natsx.IsWrongLastSequence(err) {
			continue // answered meanwhile (another device): decide again
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, id, err)
		}
		return nil
	}
	return errorf(http.StatusServiceUnavailable, CodeMembershipRaced, "the conversation is changing; retry")
}

// acceptRequest: POST /v1/conversations/:id/accept -> {conversation}: the caller, asked, accepts
// a direct conversation; what was held is delivered from here on and readable in history.
func (s *Server) acceptRequest(c *fiber.Ctx) error {
	m, err := s.member(c, true)
	if err != nil {
		return err
	}
	if !consent.Direct(m.ConversationID) {
		return errNotARequest
	}
	ctx := c.UserContext()
	if err := s.answer(ctx, m.ConversationID, m.UserID, streams.StateDirectAccepted); err != nil {
		return err
	}
	conv, err := s.store.Conversation(ctx, m.ConversationID)
	if err != nil {
		return fmt.Errorf("accept %s: %w", m.ConversationID, err)
	}
	ids, err := s.activeMemberIDs(ctx, conv.ID)
	if err != nil {
		return err
	}
	return c.JSON(conversationEnvelope{conversationOut(conv, ids)})
}

// ignoreRequest: POST /v1/conversations/:id/ignore -> 204: the caller, asked, ignores a direct
// conversation. It stays a request (it may still be accepted later): the requester is not told,
// and their messages stay held.
func (s *Server) ignoreRequest(c *fiber.Ctx) error {
	m, err := s.member(c, true)
	if err != nil {
		return err
	}
	if !consent.Direct(m.ConversationID) {
		return errNotARequest
	}
	if err := s.answer(c.UserContext(), m.ConversationID, m.UserID, streams.StateDirectIgnored); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

type blockJSON struct {
	UserID    string `json:"user_id"`
	BlockedAt string `json:"blocked_at"` // RFC 3339, UTC
}

// listBlocks: GET /v1/blocks -> {blocks}, oldest first.
func (s *Server) listBlocks(c *fiber.Ctx) error {
	blocks := s.consent.Blocks(callerID(c))
	out := make([]blockJSON, len(blocks))
	for i, b := range blocks {
		out[i] = blockJSON{UserID: b.BlockedID, BlockedAt: rfc3339(b.At)}
	}
	return c.JSON(fiber.Map{"blocks": out})
}

// blockTarget is the user named by :user, who must exist and not be the caller.
func (s *Server) blockTarget(c *fiber.Ctx) (string, error) {
	id := c.Params("user")
	switch {
	case id == callerID(c):
		return "", errorf(http.StatusBadRequest, CodeInvalidRequest, "you cannot block yourself")
	case !streams.ValidToken(id):
		return "", errorf(http.StatusNotFound, CodeUserNotFound, "no such user")
	}
	if _, err := s.store.UserByID(c.UserContext(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", errorf(http.StatusNotFound, CodeUserNotFound, "no such user")
		}
		return "", fmt.Errorf("block: user by id: %w", err)
	}
	return id, nil
}

// block: PUT /v1/blocks/:user -> 204. Idempotent.
func (s *Server) block(c *fiber.Ctx) error {
	other, err := s.blockTarget(c)
	if err != nil {
		return err
	}
	me := callerID(c)
	if !s.consent.Blocked(me, other) {
		ev := streams.StateEvent{Kind: streams.StateUserBlocked, At: time.Now().UnixMilli(),
			Block: &streams.BlockState{UserID: me, BlockedID: other}}
		if err := s.record(c.UserContext(), ev); err != nil {
			return fmt.Errorf("block: %w", err)
		}
	}
	return c.SendStatus(http.StatusNoContent)
}

// unblock: DELETE /v1/blocks/:user -> 204. Idempotent.
func (s *Server) unblock(c *fiber.Ctx) error {
	other, err := s.blockTarget(c)
	if err != nil {
		return err
	}
	me := callerID(c)
	if s.consent.Blocked(me, other) {
		ev := streams.StateEvent{Kind: streams.StateUserUnblocked, At: time.Now().UnixMilli(),
			Block: &streams.BlockState{UserID: me, BlockedID: other}}
		if err := s.record(c.UserContext(), ev); err != nil {
			return fmt.Errorf("unblock: %w", err)
		}
	}
	return c.SendStatus(http.StatusNoContent)
}

type privacyJSON struct {
	// Presence is who may see the caller's online status and last seen: "everyone" (who
	// shares a conversation with them), "contacts" (accepted direct conversations) or "nobody".
	Presence string `json:"presence"`
}

// getPrivacy: GET /v1/me/privacy -> {presence}.
func (s *Server) getPrivacy(c *fiber.Ctx) error {
	return c.JSON(privacyJSON{Presence: s.consent.PresenceVisibility(callerID(c))})
}

// putPrivacy: PUT /v1/me/privacy {presence} -> {presence}.
func (s *Server) putPrivacy(c *fiber.Ctx) error {
	var req privacyJSON
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !streams.ValidPresenceVisibility(req.Presence) {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "presence must be everyone, contacts or nobody")
	}
	me := callerID(c)
	if s.consent.PresenceVisibility(me) != req.Presence {
		ev := streams.StateEvent{Kind: streams.StatePresenceSet, At: time.Now().UnixMilli(),
			Privacy: &streams.PrivacyState{UserID: me, Presence: req.Presence}}
		if err := s.record(c.UserContext(), ev); err != nil {
			return fmt.Errorf("privacy: %w", err)
		}
	}
	return c.JSON(req)
}

// accept: POST /v1/conversations/:id/accept answers a direct request (acceptRequest) or a group
// invitation (acceptInvitation), whichever the conversation is.
func (s *Server) accept(c *fiber.Ctx) error {
	if consent.Direct(c.Params("id")) {
		return s.acceptRequest(c)
	}
	return s.acceptInvitation(c)
}
