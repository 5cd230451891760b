package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/revision"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// handleSend checks membership and publishes the message to CHAT with its dedupe id; the
// publisher acks it once the stream has it (see publish.go), while this socket's next frames
// are read. Retries of one client_msg_id get the first send's ack, whether the retry
// comes inside the stream's duplicate window (JetStream answers Duplicate) or after it (the
// store remembers the client id).
func (s *session) handleSend(f protocol.ClientFrame) {
	ref := frameRef(f)
	if !s.maySend(f, ref) {
		return
	}
	ev := streams.ChatEvent{
		Kind: streams.KindMsg, ConversationID: f.ConversationID, MessageID: ulid.Make().String(),
		SenderID: s.userID, SenderDevice: s.deviceID, ClientMsgID: f.ClientMsgID, Text: f.Text,
		SentAt: time.Now().UnixMilli(),
	}
	s.publishEvent(ref, f, streams.KindMsg, ev) // with its own timeout (Config.PublishTimeout)
}

// maySend checks a send before it is published: the sender is an active member, and a resend
// is not of a message made already (then it is answered here with the original's ack). A
// refusal is answered here. The store reads share one timeout (Config.PublishTimeout), set up
// only when the store has to be asked: a membership it holds in memory (store.MemberCache),
// the usual case, needs none.
func (s *session) maySend(f protocol.ClientFrame, ref string) bool {
	if c, ok := s.g.deps.Store.(store.MemberCache); ok && !f.Resend {
		if m, ok := c.CachedMember(f.ConversationID, s.userID); ok {
			if m.Active() {
				return true
			}
			s.reject(errNotMember.WithRef(ref))
			s.g.met.sends.WithLabelValues("not_member").Inc()
			return false
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.PublishTimeout)
	defer cancel()
	ok, err := s.mayAct(ctx, f.ConversationID, ref, store.Member.Active)
	if err != nil {
		s.unavailable(ref, "check membership", err)
		return false
	}
	if !ok {
		s.g.met.sends.WithLabelValues("not_member").Inc()
		return false
	}
	// A first attempt needs no lookup: a repeat within the duplicate window is JetStream's to
	// catch (publish.go answers it with the original), and a client marks a later one Resend.
	return !f.Resend || !s.answerRepeat(ctx, ref, f)
}

// answerRepeat answers a resend whose first attempt already made an event with that event's
// ack, and one whose lookup failed with unavailable; it reports whether it answered. It looks in
// the store and, above the persister's ack floor, in the conversation's events in the stream
// that are older than CHAT's duplicate window (revision.Decider.PreviousOutside; a younger
// first attempt is JetStream's to recognise when the resend is published), so a resend is one
// event however late it comes and however far the persister lags.
func (s *session) answerRepeat(ctx context.Context, ref string, f protocol.ClientFrame) bool {
	prev, ok, err := s.g.revisions.PreviousOutside(ctx, f.ConversationID, s.userID, f.ClientMsgID)
	switch {
	case err != nil:
		s.unavailable(ref, "look up client message id", err)
	case ok:
		s.ackDuplicate(ref, prev.ConversationID, prev.ID, prev.Seq, prev.SentAt.UnixMilli(), f.ClientMsgID)
	}
	return err != nil || ok
}

// frameRef is what the answers to f carry as ref: its id, else its client_msg_id.
func frameRef(f protocol.ClientFrame) string {
	if f.ID != "" {
		return f.ID
	}
	return f.ClientMsgID
}

// publishEvent publishes ev, the event of frame f, on CHAT as kind, with the dedupe id of f's
// client_msg_id; the publisher acks it with its seq once the stream has it (see publish.go).
func (s *session) publishEvent(ref string, f protocol.ClientFrame, kind string, ev streams.ChatEvent) {
	data, err := ev.Encode()
	if err != nil {
		s.unavailable(ref, "encode event", err)
		return
	}
	msg := nats.NewMsg(streams.ChatSubject(f.ConversationID, kind))
	msg.Data = data
	msg.Header.Set(streams.HeaderMsgID, streams.DedupeID(s.userID, f.ClientMsgID))
	msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
	s.g.pub.publish(s, &inflightSend{ref: ref, clientMsgID: f.ClientMsgID, conv: f.ConversationID,
		messageID: ev.MessageID, sentAt: ev.SentAt}, msg)
}

// handleRevision decides an edit or delete (pkg/revision) and publishes it as a send is
// published: with the dedupe id of its client_msg_id, acked with its seq once CHAT has it.
func (s *session) handleRevision(f protocol.ClientFrame) {
	ref := frameRef(f)
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.PublishTimeout)
	defer cancel()
	kind := streams.KindEdit
	if f.Type == protocol.TypeDelete {
		kind = streams.KindDelete
		if f.For == protocol.DeleteForMe {
			kind = streams.KindHide
		}
	}
	if f.Resend && s.answerRepeat(ctx, ref, f) {
		return
	}
	ev, refused, err := s.g.revisions.Decide(ctx, revision.Request{Kind: kind, ConversationID: f.ConversationID,
		TargetSeq: f.TargetSeq, UserID: s.userID, DeviceID: s.deviceID, ClientMsgID: f.ClientMsgID, Text: f.Text})
	if err != nil {
		s.unavailable(ref, "decide "+kind, err)
		return
	}
	if refused != nil {
		// A retry of an edit or delete that went through (the reason the target looks changed)
		// is answered with the first attempt's ack, as a retried send is.
		if prev, ok, err := s.g.revisions.Previous(ctx, f.ConversationID, s.userID, f.ClientMsgID); err == nil && ok {
			s.ackDuplicate(ref, prev.ConversationID, prev.ID, prev.Seq, prev.SentAt.UnixMilli(), f.ClientMsgID)
			return
		}
		s.g.met.sends.WithLabelValues(string(refused.Code)).Inc()
		s.reject(refused.WithRef(ref))
		return
	}
	cancel()
	s.publishEvent(ref, f, kind, ev)
}

// errDuplicatesBehind: too many retries are waiting for their original to be read back.
var errDuplicatesBehind = errors.New("duplicate answers are behind")

// errNotMember is the one answer to a frame naming a conversation the user may not act in:
// the same whether it does not exist or the user is not (or no longer) a member.
var errNotMember = protocol.Errorf(protocol.CodeNotMember, "not a member of this conversation, or it does not exist")

// mayAct reports whether the user may act in conv: they have a membership and allowed accepts
// it. A refusal is answered here with errNotMember; a store error is returned for the caller
// to answer.
func (s *session) mayAct(ctx context.Context, conv, ref string, allowed func(store.Member) bool) (bool, error) {
	m, err := s.g.deps.Store.Member(ctx, conv, s.userID)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !allowed(m)):
		s.reject(errNotMember.WithRef(ref))
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (s *session) ackDuplicate(ref, conv, messageID string, seq uint64, sentAt int64, clientMsgID string) {
	s.g.met.sends.WithLabelValues("duplicate").Inc()
	s.sendAck(protocol.Ack{Type: protocol.TypeAck, Ref: ref, ClientMsgID: clientMsgID, ConversationID: conv,
		MessageID: messageID, Seq: seq, SentAt: sentAt, Duplicate: true})
}

// unavailable answers a send that failed for a reason on our side; the client retries it with the
// same client_msg_id, which keeps the retry idempotent.
func (s *session) unavailable(ref, what string, err error) {
	s.g.met.sends.WithLabelValues("unavailable").Inc()
	if s.ctx.Err() == nil {
		s.logger().Warn("send failed", zap.String("step", what), zap.Error(err))
	}
	s.reject(protocol.Errorf(protocol.CodeUnavailable, "could not store the message; retry with the same client_msg_id").WithRef(ref))
}
