package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
)

// Split deployment: the API in one process, a gateway alone in another (store served over
// NATS). Logging out everywhere through the API closes Alice's socket on the other process's
// gateway with 4403, and that gateway refuses her token from then on; Bob's socket stays.
func TestLogoutReachesAGatewayInAnotherProcess(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48)) // both processes verify the same tokens
	main := StartNatter(t, t.TempDir(), "--target", "api,persister,fanout,presence,push,store")
	edge := StartNatter(t, t.TempDir(), "--target", "gateway", "--store", "remote", "--nats-url", main.Addrs.NATS)
	alice, bob := signUp(t, main.Addrs.API, "alice"), signUp(t, main.Addrs.API, "bob")
	a := connect(t, edge.Addrs.WebSocket, alice, "a")
	b := connect(t, edge.Addrs.WebSocket, bob, "b")

	doJSON(t, "POST", main.Addrs.API+"/v1/logout/all", alice.Token, nil, http.StatusNoContent, nil)
	if code := a.CloseStatus(wait); code != websocket.StatusCode(protocol.CloseSessionEnded) {
		t.Fatalf("alice's socket closed with %d, want %d", code, protocol.CloseSessionEnded)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, edge.Addrs.WebSocket+"?device=a2", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + alice.Token}},
	})
	if err == nil {
		c.CloseNow()
		t.Fatal("the other process's gateway accepted a token of an ended session")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade after logout: %v %v, want 401", resp, err)
	}
	b.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "p"})
	if p := b.NextOf(protocol.TypePong, wait); p.Ref != "p" {
		t.Fatalf("bob's socket: %+v, want its pong", p)
	}
}
