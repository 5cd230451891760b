package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/revision"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

type editRequest struct {
	ClientMsgID string `json:"client_msg_id"`
	Text        string `json:"text"`
}

// ackJSON answers an edit or delete: the event that does it, at Seq (protocol.Ack's fields).
type ackJSON struct {
	ClientMsgID    string `json:"client_msg_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Seq            uint64 `json:"seq"`
	SentAt         int64  `json:"sent_at"`
	Duplicate      bool   `json:"duplicate,omitempty"`
}

// editMessage: PATCH /v1/conversations/:id/messages/:seq {client_msg_id, text} -> 200 ack. The
// WebSocket edit frame's HTTP twin (pkg/revision has the rules).
func (s *Server) editMessage(c *fiber.Ctx) error {
	var req editRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if e := protocol.ValidateText(req.Text); e != nil {
		return errorf(http.StatusBadRequest, e.Code, "%s", e.Message)
	}
	return s.revise(c, streams.KindEdit, req.ClientMsgID, req.Text)
}

// deleteMessage: DELETE /v1/conversations/:id/messages/:seq?client_msg_id=X[&for=me] -> 200 ack.
// The WebSocket delete frame's HTTP twin: for everyone unless for=me.
func (s *Server) deleteMessage(c *fiber.Ctx) error {
	kind := streams.KindDelete
	switch c.Query("for") {
	case "", protocol.DeleteForEveryone:
	case protocol.DeleteForMe:
		kind = streams.KindHide
	default:
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "for must be %q or %q", protocol.DeleteForEveryone, protocol.DeleteForMe)
	}
	return s.revise(c, kind, c.Query("client_msg_id"), "")
}

// revisionStatus is the HTTP status of each refusal of pkg/revision.
var revisionStatus = map[protocol.Code]int{
	protocol.CodeNotMember:       http.StatusNotFound,
	protocol.CodeMessageNotFound: http.StatusNotFound,
	protocol.CodeNotAllowed:      http.StatusForbidden,
	protocol.CodeEditExpired:     http.StatusForbidden,
	protocol.CodeMessageDeleted:  http.StatusConflict,
}

func (s *Server) revise(c *fiber.Ctx, kind, clientMsgID, text string) error {
	conv := c.Params("id")
	if !streams.ValidToken(conv) {
		return errNotMember
	}
	if !streams.ValidToken(clientMsgID) {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "client_msg_id must be 1-%d characters of [A-Za-z0-9_-]", protocol.MaxIDBytes)
	}
	seq, err := strconv.ParseUint(c.Params("seq"), 10, 63)
	if err != nil || seq == 0 {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "the message must be named by its seq, a positive integer")
	}
	ctx, me := c.UserContext(), callerID(c)
	// Any request may be a retry, however late: its first attempt is looked for in the store and
	// in what CHAT holds above the persister's ack floor, up to where CHAT's duplicate window
	// recognises it on publish (below).
	if prev, ok, err := s.revisions.PreviousOutside(ctx, conv, me, clientMsgID); err != nil {
		return fmt.Errorf("%s %s/%d: %w", kind, conv, seq, err)
	} else if ok {
		return c.JSON(ackJSON{ClientMsgID: clientMsgID, ConversationID: prev.ConversationID, MessageID: prev.ID,
			Seq: prev.Seq, SentAt: prev.SentAt.UnixMilli(), Duplicate: true})
	}
	ev, refused, err := s.revisions.Decide(ctx, revision.Request{Kind: kind, ConversationID: conv, TargetSeq: seq,
		UserID: me, ClientMsgID: clientMsgID, Text: text})
	if err != nil {
		return fmt.Errorf("%s %s/%d: %w", kind, conv, seq, err)
	}
	if refused != nil {
		// A retry whose first attempt went through (the reason the target looks changed) gets
		// the first attempt's answer.
		if prev, ok, err := s.revisions.Previous(ctx, conv, me, clientMsgID); err == nil && ok {
			return c.JSON(ackJSON{ClientMsgID: clientMsgID, ConversationID: prev.ConversationID, MessageID: prev.ID,
				Seq: prev.Seq, SentAt: prev.SentAt.UnixMilli(), Duplicate: true})
		}
		status, ok := revisionStatus[refused.Code]
		if !ok {
			status = http.StatusBadRequest
		}
		if refused.Code == protocol.CodeNotMember {
			return errNotMember
		}
		return errorf(status, refused.Code, "%s", refused.Message)
	}
	data, err := ev.Encode()
	if err != nil {
		return fmt.Errorf("%s %s/%d: encode: %w", kind, conv, seq, err)
	}
	msg := nats.NewMsg(streams.ChatSubject(conv, kind))
	msg.Data = data
	msg.Header.Set(streams.HeaderMsgID, streams.DedupeID(me, clientMsgID))
	msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
	ack, err := s.js.PublishMsg(ctx, msg)
	if err != nil {
		return fmt.Errorf("%s %s/%d: publish: %w", kind, conv, seq, err)
	}
	out := ackJSON{ClientMsgID: clientMsgID, ConversationID: conv, MessageID: ev.MessageID, Seq: ack.Sequence, SentAt: ev.SentAt}
	if ack.Duplicate { // a retry inside the duplicate window: the first attempt's event
		first, err := s.firstAttempt(c, ack.Sequence)
		if err != nil {
			return err
		}
		out.MessageID, out.SentAt, out.Duplicate = first.MessageID, first.SentAt, true
	}
	return c.JSON(out)
}

// firstAttempt reads back the CHAT event at seq.
func (s *Server) firstAttempt(c *fiber.Ctx, seq uint64) (streams.ChatEvent, error) {
	st, err := s.js.Stream(c.UserContext(), streams.ChatStream)
	if err != nil {
		return streams.ChatEvent{}, fmt.Errorf("read back %d: %w", seq, err)
	}
	raw, err := st.GetMsg(c.UserContext(), seq, jetstream.WithGetMsgSubject(streams.ChatAll))
	if err != nil {
		return streams.ChatEvent{}, fmt.Errorf("read back %d: %w", seq, err)
	}
	ev, err := streams.DecodeChatEvent(raw.Data)
	if err != nil {
		return streams.ChatEvent{}, fmt.Errorf("read back %d: %w", seq, err)
	}
	return ev, nil
}
