package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// typingRepeat is how often an unchanged typing state is passed on: the indicator lapses on the
// other side after protocol.TypingExpires, so a client repeats "start" while typing.
const typingRepeat = 2 * time.Second

// failed answers a non-send frame that could not be completed on our side.
func (s *session) failed(ref, what string, err error) {
	if s.ctx.Err() == nil {
		s.logger().Warn("frame failed", zap.String("step", what), zap.Error(err))
	}
	s.reject(protocol.Errorf(protocol.CodeUnavailable, "could not complete this request; retry").WithRef(ref))
}

// handleReceipt publishes a read or delivered watermark, coalesced: a mark that does not move
// past what this socket already reported is dropped. A mark beyond the stream's head is cut to
// it: no one may mark as read what does not exist yet.
func (s *session) handleReceipt(f protocol.ClientFrame) {
	key := f.Type + "/" + f.ConversationID
	s.mu.Lock()
	stale := f.UpTo <= s.marks[key]
	s.mu.Unlock()
	if stale { // nothing new: no reads, no publish
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.PublishTimeout)
	defer cancel()
	head, err := s.g.deps.Timeline.Head(ctx)
	if err != nil {
		s.failed(f.ID, "read head", err)
		return
	}
	f.UpTo = min(f.UpTo, head)
	// A former member may still mark what they saw, up to their removal.
	ok, err := s.mayAct(ctx, f.ConversationID, f.ID, func(m store.Member) bool { return m.Active() || f.UpTo <= m.LeftSeq })
	if err != nil {
		s.failed(f.ID, "check membership", err)
		return
	}
	if !ok {
		return
	}
	s.mu.Lock()
	if f.UpTo <= s.marks[key] {
		s.mu.Unlock()
		return
	}
	if s.marks == nil {
		s.marks = map[string]uint64{}
	}
	s.marks[key] = f.UpTo
	s.mu.Unlock()
	ev := streams.ChatEvent{Kind: f.Type, ConversationID: f.ConversationID, MessageID: ulid.Make().String(),
		SenderID: s.userID, SenderDevice: s.deviceID, SentAt: time.Now().UnixMilli(), UpTo: f.UpTo}
	data, err := ev.Encode()
	if err != nil {
		s.failed(f.ID, "encode receipt", err)
		return
	}
	msg := nats.NewMsg(streams.ChatSubject(f.ConversationID, f.Type))
	msg.Data = data
	msg.Header.Set(streams.HeaderMsgID, fmt.Sprintf("%s:%s:%s:%d", s.userID, f.ConversationID, f.Type, f.UpTo))
	msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
	if _, err := s.g.deps.JS.PublishMsg(ctx, msg); err != nil {
		s.mu.Lock()
		if s.marks[key] == f.UpTo {
			delete(s.marks, key) // let the client's retry through
		}
		s.mu.Unlock()
		s.failed(f.ID, "publish receipt", err)
	}
}

// handleTyping relays a typing state to the conversation (through fanout) on core NATS: it is
// never stored. A repeat of the same state within typingRepeat is dropped.
func (s *session) handleTyping(f protocol.ClientFrame) {
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.PublishTimeout)
	defer cancel()
	ok, err := s.mayAct(ctx, f.ConversationID, f.ID, store.Member.Active)
	if err != nil {
		s.failed(f.ID, "check membership", err)
		return
	}
	if !ok {
		return
	}
	now := time.Now()
	s.mu.Lock()
	last := s.typing[f.ConversationID]
	if last.state == f.State && now.Sub(last.at) < typingRepeat {
		s.mu.Unlock()
		return
	}
	if s.typing == nil {
		s.typing = map[string]typingState{}
	}
	s.typing[f.ConversationID] = typingState{f.State, now}
	s.mu.Unlock()
	data, _ := json.Marshal(streams.Typing{ConversationID: f.ConversationID, UserID: s.userID, DeviceID: s.deviceID, State: f.State})
	if err := s.g.deps.NC.Publish(streams.TypingSubject(f.ConversationID), data); err != nil {
		s.logger().Warn("publish typing", zap.Error(err))
	}
}

type typingState struct {
	state string
	at    time.Time
}

// handlePresence answers who of the named users is online. A user whose presence the asker may
// not see is "unknown", exactly like a stranger: one who shares no conversation with the asker
// (a direct request does not count), one on the other side of a block, one whose setting
// hides it (consent.Table.SeesPresence).
func (s *session) handlePresence(f protocol.ClientFrame) {
	ctx, cancel := context.WithTimeout(s.ctx, s.g.cfg.PublishTimeout)
	defer cancel()
	ties, err := s.coMembers(ctx)
	if err != nil {
		s.failed(f.ID, "co-members", err)
		return
	}
	out := protocol.Presence{Type: protocol.TypePresence, Ref: f.ID, Users: make([]protocol.UserStatus, 0, len(f.UserIDs))}
	for _, u := range f.UserIDs {
		st := protocol.UserStatus{UserID: u, Status: "unknown"}
		if t, ok := ties[u]; ok && s.g.consent.SeesPresence(s.userID, u, t) {
			st.Status = streams.Offline
			e, err := s.g.presenceKV.Get(ctx, u)
			switch {
			case err == nil:
				var ps streams.PresenceStatus
				if json.Unmarshal(e.Value(), &ps) == nil {
					st.Status, st.LastSeen = ps.Status, ps.LastSeen
				}
			case !errors.Is(err, jetstream.ErrKeyNotFound):
				s.failed(f.ID, "read presence", err)
				return
			}
		}
		out.Users = append(out.Users, st)
	}
	s.send(out)
}

// coMembers is what this session's user shares with each user of their current conversations:
// a group or an accepted direct conversation, and whether it is an accepted direct one (a
// contact). Direct requests are left out.
func (s *session) coMembers(ctx context.Context) (map[string]consent.Ties, error) {
	st := s.g.deps.Store
	mine, err := st.MembershipsOf(ctx, s.userID)
	if err != nil {
		return nil, err
	}
	ties := map[string]consent.Ties{s.userID: {Conversation: true, Contact: true}}
	for _, m := range mine {
		if !m.Active() || !s.g.consent.Accepted(m.ConversationID) {
			continue
		}
		ms, err := st.Members(ctx, m.ConversationID)
		if err != nil {
			return nil, err
		}
		direct := consent.Direct(m.ConversationID)
		for _, o := range ms {
			if o.Active() {
				t := ties[o.UserID]
				t.Conversation, t.Contact = true, t.Contact || direct
				ties[o.UserID] = t
			}
		}
	}
	return ties, nil
}

// announcePresence tells the presence consumer that this socket came or went.
func (s *session) announcePresence(state string) {
	data, _ := json.Marshal(streams.PresenceEvent{V: streams.Version, UserID: s.userID, DeviceID: s.deviceID, State: state,
		Gateway: s.g.cfg.ID, Session: s.id, At: time.Now().UnixMilli()})
	ctx, cancel := context.WithTimeout(context.Background(), s.g.cfg.PublishTimeout)
	defer cancel()
	if _, err := s.g.deps.JS.Publish(ctx, streams.PresenceSubject(s.userID, s.deviceID), data); err != nil {
		s.logger().Warn("publish presence", zap.String("state", state), zap.Error(err))
	}
}
