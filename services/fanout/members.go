package fanout

import (
	"context"
	"time"

	"github.com/natter-chat/natter/pkg/store"
)

// Bounds of a partition's member cache.
const (
	membersTTL = 5 * time.Second
	membersMax = 10_000
)

// memberCache keeps the members of the conversations a partition routed lately, so that a busy
// conversation's members are read from the store once rather than for every event. It is used by
// the partition's one worker only.
//
// It stays exact because a conversation's membership changes only by its CHAT member events,
// which every partition routes in stream order: route forgets the conversation at each one,
// before applying it, and inOrder forgets everything when events were handled elsewhere (a gap).
// The TTL bounds what any other writer (a direct conversation's creation, projected from STATE)
// could leave stale.
type memberCache struct {
	m   map[string]cachedMembers
	now func() time.Time
}

type cachedMembers struct {
	members []store.Member
	at      time.Time
}

// get returns conv's members; the slice is shared and must not be changed.
func (c *memberCache) get(ctx context.Context, st store.Store, conv string) ([]store.Member, error) {
	now := c.now()
	if e, ok := c.m[conv]; ok && now.Sub(e.at) < membersTTL {
		return e.members, nil
	}
	members, err := st.Members(ctx, conv)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= membersMax {
		c.m = make(map[string]cachedMembers)
	}
	c.m[conv] = cachedMembers{members: members, at: now}
	return members, nil
}

// forget drops conv: its membership is about to change.
func (c *memberCache) forget(conv string) { delete(c.m, conv) }

// clear drops everything: events were handled elsewhere, membership changes among them.
func (c *memberCache) clear() { c.m = nil }
