package gateway

import (
	"testing"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/streams"
)

// A socket whose token was checked just before its session was revoked, and which joins the hub
// only after the announcement, is told to close: the hub remembers recent revocations.
func TestHubRemembersRevocationsForLateSockets(t *testing.T) {
	g := &Gateway{log: zap.NewNop()}
	h := newHub(g)
	h.onRevoked(&nats.Msg{Subject: streams.SessionRevokedSubject("u1", "s1")})
	h.onRevoked(&nats.Msg{Subject: "session.revoked.not-enough"}) // ignored, logged

	if _, revoked := h.add(&session{g: g, userID: "u1", deviceID: "d1", login: "s1"}); !revoked {
		t.Fatal("a socket of a session revoked just before it joined was not reported revoked")
	}
	if _, revoked := h.add(&session{g: g, userID: "u1", deviceID: "d2", login: "s2"}); revoked {
		t.Fatal("a socket of another session of the same user was reported revoked")
	}
	if len(h.revoked) != 1 {
		t.Fatalf("the hub remembers %d revocations, want 1", len(h.revoked))
	}
}
