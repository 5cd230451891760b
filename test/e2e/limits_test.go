package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/coder/websocket"
)

// TestUpgradeLimitsThroughTheRealBinary: --limit-upgrade-addr and --trusted-proxies, given to the
// binary, limit WebSocket upgrades per client address: the address a trusted proxy names gets its
// burst, then 429 with Retry-After; another address is not affected; the refusal is on /metrics.
func TestUpgradeLimitsThroughTheRealBinary(t *testing.T) {
	p := StartNatter(t, t.TempDir(), "--limit-upgrade-addr", "2/1h", "--trusted-proxies", "127.0.0.1/32")
	alice := signUp(t, p.Addrs.API, "alice")
	upgrade := func(addr string, i int) *http.Response {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, p.Addrs.WebSocket+"?device=d"+strconv.Itoa(i)+"&token="+alice.Token,
			&websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {addr}}})
		if err == nil {
			_ = c.CloseNow()
			return &http.Response{StatusCode: http.StatusSwitchingProtocols}
		}
		if resp == nil {
			t.Fatalf("upgrade from %s: %v", addr, err)
		}
		return resp
	}
	for i, tc := range []struct {
		addr string
		want int
	}{
		{"203.0.113.9", http.StatusSwitchingProtocols},
		{"203.0.113.9", http.StatusSwitchingProtocols},
		{"203.0.113.9", http.StatusTooManyRequests},
		{"203.0.113.10", http.StatusSwitchingProtocols},
	} {
		resp := upgrade(tc.addr, i)
		if resp.StatusCode != tc.want {
			t.Fatalf("upgrade %d from %s: %d, want %d", i, tc.addr, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusTooManyRequests {
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
				t.Fatalf("429 with Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
			}
		}
	}
	awaitMetrics(t, p.Addrs.Metrics, 0, `natter_gateway_upgrades_refused_total{reason="addr_rate"} 1`) // the refused upgrade is counted
}
