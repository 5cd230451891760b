package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	kv, err := e.js.KeyValue(ctx, streams.GatewaysBucket)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id string, conns int) {
		t.Helper()
		raw, _ := json.Marshal(streams.GatewayInfo{ID: id, URL: "ws://" + id + ":8080/v1/ws", Connections: conns, Updated: 1})
		if _, err := kv.Put(ctx, id, raw); err != nil {
			t.Fatal(err)
		}
	}
	pick := func() (string, int) {
		t.Helper()
		var d discoveryJSON
		e.call(t, "GET", "/v1/discovery", "", nil, http.StatusOK, &d) // no token needed
		return d.Gateway.ID, len(d.Gateways)
	}

	e.wantError(t, "GET", "/v1/discovery", "", nil, http.StatusServiceUnavailable, protocol.CodeUnavailable)

	put("gw-a", 10)
	put("gw-b", 3)
	put("gw-c", 7)
	if _, err := kv.Put(ctx, "gw-broken", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	var d discoveryJSON
	e.call(t, "GET", "/v1/discovery", "", nil, http.StatusOK, &d)
	if d.Gateway != (gatewayJSON{ID: "gw-b", URL: "ws://gw-b:8080/v1/ws", Connections: 3}) || len(d.Gateways) != 3 ||
		d.Gateways[1].ID != "gw-c" || d.Gateways[2].ID != "gw-a" {
		t.Fatalf("discovery %+v", d)
	}

	put("gw-b", 12) // gw-b got busy
	if id, n := pick(); id != "gw-c" || n != 3 {
		t.Fatalf("picked %s of %d, want gw-c", id, n)
	}
	if err := kv.Delete(ctx, "gw-c"); err != nil { // gw-c went away
		t.Fatal(err)
	}
	if id, n := pick(); id != "gw-a" || n != 2 {
		t.Fatalf("picked %s of %d, want gw-a", id, n)
	}

	// Ties are broken at random, so equally loaded gateways share new clients.
	put("gw-b", 10)
	seen := map[string]bool{}
	for range 40 {
		id, _ := pick()
		seen[id] = true
	}
	if !seen["gw-a"] || !seen["gw-b"] || len(seen) != 2 {
		t.Fatalf("tie picks %v", seen)
	}

	for _, key := range []string{"gw-a", "gw-b", "gw-broken"} {
		if err := kv.Purge(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	e.wantError(t, "GET", "/v1/discovery", "", nil, http.StatusServiceUnavailable, protocol.CodeUnavailable)
}
