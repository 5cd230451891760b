package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// hub indexes this gateway's sessions by user and device. It never blocks on a socket:
// delivery only enqueues (see session.deliver).
type hub struct {
	g      *Gateway
	mu     sync.RWMutex
	byUser map[string][]*session // user -> its sessions, one per device (a few: a slice is cheaper to walk than a map)
	n      int
	// receiving serialises deliveries (receive): they come from the NATS subscription's
	// goroutine and, from fanout and presence in this process, from theirs.
	receiving sync.Mutex
	chains    chains // under receiving
	// revoked holds the login sessions announced revoked in the last revokedMemory, for add: a
	// socket whose token was checked just before its session was revoked, and which joins the
	// hub just after the announcement, is closed all the same.
	revoked map[string]time.Time
}

// revokedMemory is how long the hub remembers a revocation: longer than a token check
// (authTimeout) and an upgrade take together.
const revokedMemory = time.Minute

// sessionEndedReason is the close reason of a socket whose login session was revoked.
const sessionEndedReason = "the session has ended (logout or revoked); log in again"

func newHub(g *Gateway) *hub {
	return &hub{g: g, byUser: map[string][]*session{}, chains: chains{links: map[uint64]chainLink{}},
		revoked: map[string]time.Time{}}
}

// add registers s; a session of the same device already here is returned so the caller can close
// it with CloseReplaced. revoked reports that s's login session was announced revoked lately:
// the caller closes s with CloseSessionEnded.
func (h *hub) add(s *session) (replaced *session, revoked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, revoked = h.revoked[s.login]
	devs := h.byUser[s.userID]
	if i := slices.IndexFunc(devs, func(o *session) bool { return o.deviceID == s.deviceID }); i >= 0 {
		replaced, devs[i] = devs[i], s
		return replaced, revoked
	}
	h.byUser[s.userID] = append(devs, s)
	h.n++
	return nil, revoked
}

// onRevoked runs on the revocation subscription's goroutine: it closes, with CloseSessionEnded,
// every socket of the login session named by the subject (streams.SessionRevokedSubject), and
// remembers the session for add.
func (h *hub) onRevoked(msg *nats.Msg) {
	userID, login, ok := streams.ParseSessionRevokedSubject(msg.Subject)
	if !ok {
		h.g.log.Warn("bad session revocation subject", zap.String("subject", msg.Subject))
		return
	}
	now := time.Now()
	var closing []*session
	h.mu.Lock()
	for id, at := range h.revoked {
		if now.Sub(at) > revokedMemory {
			delete(h.revoked, id)
		}
	}
	h.revoked[login] = now
	for _, s := range h.byUser[userID] {
		if s.login == login {
			closing = append(closing, s)
		}
	}
	h.mu.Unlock()
	for _, s := range closing {
		s.fail(protocol.CloseSessionEnded, sessionEndedReason)
	}
	if len(closing) > 0 { // counted in closes_total{code="4403"}
		h.g.log.Info("closed the sockets of a revoked session", zap.String("user", userID), zap.String("login", login), zap.Int("sockets", len(closing)))
	}
}

// remove unregisters s unless a newer session of the device took its place.
func (h *hub) remove(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	devs := h.byUser[s.userID]
	i := slices.Index(devs, s)
	if i < 0 {
		return
	}
	h.n--
	if devs = slices.Delete(devs, i, i+1); len(devs) == 0 {
		delete(h.byUser, s.userID)
	} else {
		h.byUser[s.userID] = devs
	}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.n
}

func (h *hub) all() []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*session, 0, h.n)
	for _, devs := range h.byUser {
		out = append(out, devs...)
	}
	return out
}

// onDelivery runs on the NATS subscription goroutine: decode once and receive.
func (h *hub) onDelivery(msg *nats.Msg) {
	d, err := streams.DecodeDelivery(msg.Data)
	if err != nil {
		h.g.log.Error("bad delivery", zap.Error(err))
		return
	}
	h.receive(d)
}

// receive enqueues the frame, as fanout built it, to every session of the named users: a
// delivery over NATS (onDelivery) or a direct call from this process (streams.LocalGateways).
func (h *hub) receive(d streams.Delivery) {
	h.receiving.Lock()
	defer h.receiving.Unlock()
	unbroken, why := h.chains.follows(d, time.Now())
	switch {
	case d.Resync: // fanout skipped ahead: nothing later may reach a socket before it syncs
		h.resync(d.ResyncBelow, "fanout reports a gap in this gateway's events")
		return
	case !unbroken:
		h.resync(d.Seq, why)
	}
	if d.End || len(d.Frame) == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, u := range d.Users {
		for _, s := range h.byUser[u] {
			if d.Seq == 0 { // outside the timeline
				s.enqueue(d.Frame)
			} else {
				s.deliver(d.Conversation, d.Seq, d.Frame)
			}
		}
	}
}

// resync closes, with the resync code, every session that events below below may still be
// missing from (all of them when below is 0): it catches up from its cursor when it reconnects.
// A session whose catch-up covers below-1 has them all, and drops them when they come late.
func (h *hub) resync(below uint64, why string) {
	n := 0
	for _, s := range h.all() {
		if below > 0 && s.caughtUpTo(below-1) {
			continue
		}
		s.fail(protocol.CloseResync, "missed deliveries; reconnect and sync")
		n++
	}
	h.g.log.Warn(why+"; clients not caught up past it resync", zap.Uint64("below", below), zap.Int("closed", n))
}

// closeAll closes every session with code, concurrently.
func (h *hub) closeAll(code protocol.CloseCode, reason string) {
	for _, s := range h.all() {
		s.fail(code, reason)
	}
}

// refreshRoutes re-puts every session's route so it outlives its TTL.
func (h *hub) refreshRoutes() {
	for _, s := range h.all() {
		ctx, cancel := context.WithTimeout(s.ctx, h.g.cfg.PublishTimeout)
		_ = s.refreshRoute(ctx) // it logs a failure; the next refresh tries again
		cancel()
	}
}

// onAccountDeleted runs on the subscription to account.deleted.*: when an account is deleted,
// every socket of it on this gateway is closed (its token is refused from then on, so it cannot
// come back). A gateway that was cut off from NATS when the announcement passed closes every
// socket anyway when it reconnects (maintain), and the reconnects are refused.
func (h *hub) onAccountDeleted(msg *nats.Msg) {
	userID, ok := streams.ParseAccountDeletedSubject(msg.Subject)
	if !ok {
		h.g.log.Warn("bad account deletion subject", zap.String("subject", msg.Subject))
		return
	}
	h.mu.RLock()
	closing := slices.Clone(h.byUser[userID])
	h.mu.RUnlock()
	for _, s := range closing {
		s.fail(protocol.CloseUnauthorized, "account deleted")
	}
}

// onRequest runs on the consent table's feed: it sends the request notice to every socket on
// this gateway of the users it concerns (consent.Notice.Users). A socket that is not connected
// misses it and reads the requests from the conversation list when it connects.
func (h *hub) onRequest(n consent.Notice) {
	frame, err := json.Marshal(protocol.RequestNotice{Type: protocol.TypeRequest, ConversationID: n.Request.ConversationID,
		From: n.Request.From, To: n.Request.To, State: n.State, At: n.Request.At.UnixMilli()})
	if err != nil {
		h.g.log.Error("encode request notice", zap.Error(err))
		return
	}
	sent := 0
	h.mu.RLock()
	for _, u := range n.Users {
		for _, s := range h.byUser[u] {
			s.enqueue(frame)
			sent++
		}
	}
	h.mu.RUnlock()
	h.g.met.requestNotices.WithLabelValues(n.State).Add(float64(sent))
}
