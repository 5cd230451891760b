package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/coder/websocket"
)

// TestAllowedOriginsGovernBothFrontDoors: --allowed-origins, given to the binary, decides which
// browser pages open sockets on the gateway and which get CORS answers from the API.
func TestAllowedOriginsGovernBothFrontDoors(t *testing.T) {
	const listed, foreign = "https://chat.example.com", "https://evil.example.net"
	p := StartNatter(t, t.TempDir(), "--allowed-origins", listed)
	alice := signUp(t, p.Addrs.API, "alice")

	for o, want := range map[string]int{listed: http.StatusSwitchingProtocols, foreign: http.StatusForbidden} {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		c, resp, err := websocket.Dial(ctx, p.Addrs.WebSocket+"?device=web&token="+alice.Token,
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {o}}})
		cancel()
		switch {
		case err == nil:
			_ = c.CloseNow()
			if want != http.StatusSwitchingProtocols {
				t.Errorf("socket from %s opened, want %d", o, want)
			}
		case resp == nil || resp.StatusCode != want:
			t.Errorf("socket from %s: %v, want %d", o, err, want)
		}

		req, err := http.NewRequest(http.MethodOptions, p.Addrs.API+"/v1/me", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", o)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		pre, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		pre.Body.Close()
		allow := pre.Header.Get("Access-Control-Allow-Origin")
		if (o == listed) != (pre.StatusCode == http.StatusNoContent && allow == o) {
			t.Errorf("preflight from %s: %d, Access-Control-Allow-Origin %q", o, pre.StatusCode, allow)
		}
	}
}
