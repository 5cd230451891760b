package invariant

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// A gateway that dies without a word (as after kill -9: no close frames, no offline events, no
// more discovery refreshes) takes its users offline within the gateway TTL, and their contacts on
// other gateways are told.
func TestUsersOfADeadGatewayGoOffline(t *testing.T) {
	c := newCluster(t)
	const ttl = 2 * time.Second
	fast := func(cfg *app.Config) {
		cfg.Gateway.Announce = 300 * time.Millisecond
		cfg.Presence.GatewayTTL, cfg.Presence.Sweep = ttl, 300*time.Millisecond
	}
	api := c.start(app.TargetAPI)
	c.start(app.TargetFanout)
	c.startWith(fast, app.TargetPresence)
	doomed := c.startWith(fast, app.TargetGateway)
	healthy := c.startWith(fast, app.TargetGateway)
	sys := &apptest.System{T: t, APIURL: "http://" + api.run.API.Addr()}
	alice, bob := sys.SignUp("alice"), sys.SignUp("bob")
	sys.Direct(alice, bob)

	b := apptest.Dial(t, apptest.WSURLFor(healthy.run.Gateway.URL(), bob.Token, "b", nil))
	b.NextOf(protocol.TypeSynced, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, _, err := websocket.Dial(ctx, apptest.WSURLFor(doomed.run.Gateway.URL(), alice.Token, "a", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := statusFrom(t, b, alice.ID); got != "online" {
		t.Fatalf("alice %s after connecting", got)
	}
	// The crash: the gateway loses the bus and its socket, all at once.
	killed := time.Now()
	doomed.run.NC.Close()
	_ = a.CloseNow()
	if got := statusFrom(t, b, alice.ID); got != "offline" {
		t.Fatalf("alice %s after her gateway died", got)
	}
	took := time.Since(killed)
	if took > 3*ttl {
		t.Fatalf("alice went offline %s after her gateway died; the TTL is %s", took, ttl)
	}
	t.Logf("offline %s after the gateway died (gateway TTL %s)", took.Round(time.Millisecond), ttl)
}

// statusFrom waits for a live presence change of user on ws.
func statusFrom(t *testing.T, ws *apptest.WS, user string) string {
	t.Helper()
	for {
		f := ws.NextOf(protocol.TypePresence, 15*time.Second)
		var p protocol.Presence
		if err := json.Unmarshal(f.Raw, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Users) == 1 && p.Users[0].UserID == user {
			return p.Users[0].Status
		}
	}
}
