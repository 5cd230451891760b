package push

import (
	"context"
	"fmt"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
)

// MaxBadge caps the unread count a notification carries (the API's MaxUnread is the same).
const MaxBadge = 999

// Unread is userID's total unread count: over the user's current memberships, the text messages
// above the user's read watermark (and above the point the user joined) that someone else sent,
// counted as the conversation list counts them (timeline.Reader.CountAfter: the store, and the
// CHAT stream above the persister's ack floor), leaving out what consent hides from the user
// (held requests, blocked senders; cons may be nil: nothing hidden). It stops counting at limit.
func Unread(ctx context.Context, st store.Store, tl *timeline.Reader, cons *consent.Table, userID string, limit int) (int, error) {
	ms, err := st.MembershipsOf(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("unread of %s: %w", userID, err)
	}
	n := 0
	for _, m := range ms {
		if n >= limit {
			break
		}
		if !m.Active() {
			continue
		}
		w, err := st.Watermark(ctx, m.ConversationID, userID)
		if err != nil {
			return 0, fmt.Errorf("unread of %s: %w", userID, err)
		}
		counts := func(x store.Message) bool {
			return x.SenderID != userID && !x.HiddenTo(userID) && (cons == nil || cons.SeesMessage(userID, x.SenderID, x.ConversationID))
		}
		c, err := tl.CountAfterFunc(ctx, m.ConversationID, max(w.Read, m.JoinedSeq), counts, limit-n)
		if err != nil {
			return 0, fmt.Errorf("unread of %s in %s: %w", userID, m.ConversationID, err)
		}
		n += c
	}
	return min(n, limit), nil
}
