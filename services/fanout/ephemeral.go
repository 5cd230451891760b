package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// routeReceipt relays a read or delivered watermark: to the reader's own devices (reading on one
// clears the unread count on the others) and, in a direct conversation, to the other member
// (who sees "delivered" and "read") when consent allows (consent.Table.SeesActivity). A group's receipts are not broadcast to the group; members
// ask for them (GET /v1/conversations/{id}/receipts).
func (part *partition) routeReceipt(ctx context.Context, conv string, data []byte) error {
	f := part.f
	ev, err := streams.DecodeChatEvent(data)
	if err != nil {
		return consumer.Permanent(err)
	}
	c, err := f.deps.Store.Conversation(ctx, conv)
	if errors.Is(err, store.ErrNotFound) {
		return consumer.Permanent(fmt.Errorf("receipt for unknown conversation %s", conv))
	}
	if err != nil {
		return fmt.Errorf("receipt for %s: %w", conv, err)
	}
	users := []string{ev.SenderID}
	if c.Kind == store.Direct {
		members, err := f.deps.Store.Members(ctx, conv)
		if err != nil {
			return fmt.Errorf("receipt for %s: members: %w", conv, err)
		}
		for _, m := range members {
			if m.UserID != ev.SenderID && m.Active() && f.consent.SeesActivity(m.UserID, ev.SenderID, conv) {
				users = append(users, m.UserID)
			}
		}
	}
	frame, err := json.Marshal(protocol.Receipt{Type: protocol.TypeReceipt, ConversationID: conv, UserID: ev.SenderID,
		DeviceID: ev.SenderDevice, Kind: ev.Kind, UpTo: ev.UpTo})
	if err != nil {
		return consumer.Permanent(err)
	}
	overNATS, err := f.routes.DeliverFrame(f.courier, users, frame, part.delivers)
	if overNATS {
		part.overNATS.Store(true)
	}
	return err
}

// typingTimeout bounds the store read behind one typing indicator; a late one is worthless.
const typingTimeout = 2 * time.Second

// relayTyping passes a typing indicator on to the conversation's other current members whom
// consent lets see it (consent.Table.SeesActivity). It is
// best effort and never stored: a lost indicator lapses by itself on the client.
func (f *Fanout) relayTyping(msg *nats.Msg) {
	var t streams.Typing
	if err := json.Unmarshal(msg.Data, &t); err != nil || !streams.ValidToken(t.ConversationID) {
		f.log.Warn("bad typing event", zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), typingTimeout)
	defer cancel()
	members, err := f.deps.Store.Members(ctx, t.ConversationID)
	if err != nil {
		f.log.Warn("typing: members", zap.String("conversation", t.ConversationID), zap.Error(err))
		return
	}
	var users []string
	for _, m := range members {
		if m.Active() && m.UserID != t.UserID && f.consent.SeesActivity(m.UserID, t.UserID, t.ConversationID) {
			users = append(users, m.UserID)
		}
	}
	frame, _ := json.Marshal(protocol.Typing{Type: protocol.TypeTyping, ConversationID: t.ConversationID, UserID: t.UserID,
		State: t.State, ExpiresInMS: protocol.TypingExpires})
	if _, err := f.routes.DeliverFrame(f.courier, users, frame, nil); err != nil {
		f.log.Warn("typing: deliver", zap.Error(err))
	}
}
