package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app/apptest"
)

// Two processes: natter with every component, and a second natter running only a gateway
// against the first one's NATS. Alice is on the second; it is killed with kill -9. Her contact
// Bob, on the first, is told she went offline within the gateway TTL.
func TestKilledGatewaysUsersGoOffline(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48)) // both processes verify the same tokens
	const ttl = 3 * time.Second
	// The second process uses the first one's store, as a split deployment does: a gateway checks
	// every token's account there.
	main := StartNatter(t, t.TempDir(), "--gateway-ttl", ttl.String(), "--target", "gateway,api,persister,fanout,presence,push,store")
	edge := StartNatter(t, t.TempDir(), "--target", "gateway", "--store", "remote", "--nats-url", main.Addrs.NATS, "--gateway-ttl", ttl.String())
	alice, bob := signUp(t, main.Addrs.API, "alice"), signUp(t, main.Addrs.API, "bob")
	openDirect(t, main.Addrs.API, alice, bob)

	b := connect(t, main.Addrs.WebSocket, bob, "b")
	connect(t, edge.Addrs.WebSocket, alice, "a")
	if got := presenceChange(t, b, alice.ID); got != "online" {
		t.Fatalf("alice %s after connecting through the second process", got)
	}
	killed := time.Now()
	edge.Kill()
	if got := presenceChange(t, b, alice.ID); got != "offline" {
		t.Fatalf("alice %s after her gateway was killed", got)
	}
	took := time.Since(killed)
	if took > 3*ttl {
		t.Fatalf("offline only %s after kill -9 (gateway TTL %s)", took, ttl)
	}
	t.Logf("offline %s after kill -9 of her gateway (gateway TTL %s)", took.Round(time.Millisecond), ttl)
	// Discovery stops offering the dead gateway once its entry in the gateways bucket expires.
	// Presence may tell of the death a little before JetStream's expiry timer removes the entry
	// (seen: offline at 2.9 s, the entry still listed), so discovery is asked until it is gone.
	for deadline := killed.Add(3 * ttl); ; {
		var disc struct {
			Gateways []struct{ URL string } `json:"gateways"`
		}
		doJSON(t, "GET", main.Addrs.API+"/v1/discovery", "", nil, http.StatusOK, &disc)
		if !slices.ContainsFunc(disc.Gateways, func(g struct{ URL string }) bool { return g.URL == edge.Addrs.WebSocket }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery still offers the killed gateway %s after kill -9: %+v", time.Since(killed).Round(time.Millisecond), disc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	main.Interrupt()
}

func presenceChange(t *testing.T, ws *apptest.WS, user string) string {
	t.Helper()
	for {
		f := ws.NextOf(protocol.TypePresence, 30*time.Second)
		var p protocol.Presence
		if err := json.Unmarshal(f.Raw, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Users) == 1 && p.Users[0].UserID == user {
			return p.Users[0].Status
		}
	}
}
