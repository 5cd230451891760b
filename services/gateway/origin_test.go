package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/pkg/origin"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// upgradeFrom dials a socket for token with the Origin header o ("" sends none). It returns 101
// and closes the socket once the welcome frame came, or the refusal's status and error code.
func upgradeFrom(t *testing.T, s *apptest.System, token, o string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if o != "" {
		opts.HTTPHeader.Set("Origin", o)
	}
	c, resp, err := websocket.Dial(ctx, s.WSURL+"?device=web&token="+token, opts)
	if err == nil {
		defer c.CloseNow()
		_, data, err := c.Read(ctx)
		var f apptest.Frame
		if err != nil || json.Unmarshal(data, &f) != nil || f.Type != protocol.TypeWelcome {
			t.Fatalf("origin %q: first frame %s, %v; want welcome", o, data, err)
		}
		return http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatalf("origin %q: no HTTP answer: %v", o, err)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if derr := json.NewDecoder(resp.Body).Decode(&body); derr != nil {
		t.Fatalf("origin %q: status %d, body not natter's JSON error: %v", o, resp.StatusCode, derr)
	}
	if body.Error.Code == "origin_not_allowed" && body.Error.Message == "" {
		t.Errorf("origin %q: refusal without a message", o)
	}
	return resp.StatusCode, body.Error.Code
}

func mustPolicy(t *testing.T, list string) origin.Policy {
	t.Helper()
	p, err := origin.Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUpgradeFollowsTheOriginPolicy: with a list, a browser page of a listed origin or of the
// gateway's own host opens a socket, any other page gets 403 origin_not_allowed (before its
// token is looked at), and a client that sends no Origin is not affected. With * (the default)
// every origin opens one.
func TestUpgradeFollowsTheOriginPolicy(t *testing.T) {
	const allowed, foreign = "https://chat.example.com", "https://evil.example.net"
	for _, tc := range []struct {
		policy string // "": the default configuration
		origin string // "own host": the gateway's own scheme://host:port
		status int
		code   string
	}{
		{allowed, "", http.StatusSwitchingProtocols, ""},
		{allowed, "own host", http.StatusSwitchingProtocols, ""},
		{allowed, allowed, http.StatusSwitchingProtocols, ""},
		{allowed, "HTTPS://Chat.Example.com:443", http.StatusSwitchingProtocols, ""},
		{allowed, foreign, http.StatusForbidden, "origin_not_allowed"},
		{allowed, "http://chat.example.com", http.StatusForbidden, "origin_not_allowed"},
		{allowed, "null", http.StatusForbidden, "origin_not_allowed"},
		{"", "", http.StatusSwitchingProtocols, ""},
		{"", "own host", http.StatusSwitchingProtocols, ""},
		{"", foreign, http.StatusSwitchingProtocols, ""},
		{"*", foreign, http.StatusSwitchingProtocols, ""},
		{"*", "null", http.StatusSwitchingProtocols, ""},
	} {
		t.Run(tc.policy+" from "+tc.origin, func(t *testing.T) {
			var opts []apptest.Option
			if tc.policy != "" {
				p := mustPolicy(t, tc.policy)
				opts = append(opts, func(c *app.Config) { c.SetAllowedOrigins(p) })
			}
			s := apptest.Start(t, opts...)
			o := tc.origin
			if o == "own host" {
				u, err := url.Parse(s.WSURL)
				if err != nil {
					t.Fatal(err)
				}
				o = "http://" + u.Host
			}
			status, code := upgradeFrom(t, s, s.SignUp("alice").Token, o)
			if status != tc.status || code != tc.code {
				t.Errorf("status %d %q, want %d %q", status, code, tc.status, tc.code)
			}
			if tc.status == http.StatusForbidden {
				// The policy answers first: a page of a refused origin learns nothing of tokens.
				if status, code := upgradeFrom(t, s, "garbage", o); status != http.StatusForbidden || code != "origin_not_allowed" {
					t.Errorf("with a bad token: status %d %q, want 403 origin_not_allowed", status, code)
				}
			}
		})
	}
}
