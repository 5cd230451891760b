package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// wantSessionEnded waits (up to wait) for the server to close ws with CloseSessionEnded and
// logs how long that took after the revocation answered.
func wantSessionEnded(t *testing.T, name string, ws *apptest.WS, revoked time.Time) {
	t.Helper()
	if code := ws.CloseStatus(wait); code != websocket.StatusCode(protocol.CloseSessionEnded) {
		t.Fatalf("%s: closed with %d, want %d (session ended)", name, code, protocol.CloseSessionEnded)
	}
	t.Logf("%s closed %s after the revocation answered", name, time.Since(revoked).Round(time.Millisecond))
}

// wantOpen requires ws to still answer a ping.
func wantOpen(t *testing.T, name string, ws *apptest.WS) {
	t.Helper()
	ws.Send(protocol.ClientFrame{Type: protocol.TypePing, ID: "still-there"})
	if p := ws.NextOf(protocol.TypePong, wait); p.Ref != "still-there" {
		t.Fatalf("%s: got %+v, want its pong", name, p)
	}
}

// upgradeStatus is the HTTP status of a WebSocket upgrade with token (101 if it opened).
func upgradeStatus(t *testing.T, s *apptest.System, token string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.WSURL+"?device=probe", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("upgrade: no HTTP answer: %v", err)
	}
	return resp.StatusCode
}

func meStatus(t *testing.T, s *apptest.System, token string) int {
	t.Helper()
	status, _ := apptest.Request(t, "GET", s.APIURL+"/v1/me", token, nil)
	return status
}

// Ending one session from another device closes that session's socket at once, and its token
// is refused by the API and by the gateway; the other session goes on.
func TestRevokedSessionsSocketIsClosed(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	phone := s.LogIn(alice)
	laptopWS, phoneWS := dial(s, alice, "laptop", nil), dial(s, phone, "phone", nil)
	phoneWS2 := dial(s, phone, "phone-web", nil) // a second socket of the same session

	s.Do("DELETE", "/v1/sessions/"+phone.SessionID, alice.Token, nil, http.StatusNoContent, nil)
	revoked := time.Now()
	wantSessionEnded(t, "phone socket", phoneWS, revoked)
	wantSessionEnded(t, "phone's second socket", phoneWS2, revoked)
	if got := meStatus(t, s, phone.Token); got != http.StatusUnauthorized {
		t.Errorf("API with the revoked session's token: %d, want 401", got)
	}
	if got := upgradeStatus(t, s, phone.Token); got != http.StatusUnauthorized {
		t.Errorf("upgrade with the revoked session's token: %d, want 401", got)
	}
	wantOpen(t, "laptop", laptopWS)
	if got := meStatus(t, s, alice.Token); got != http.StatusOK {
		t.Errorf("API with the other session's token: %d, want 200", got)
	}
}

// Logging out everywhere closes every socket of every session of the account, and nobody
// else's.
func TestLogoutEverywhereClosesEverySocket(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	second := s.LogIn(alice)
	a1, a2, b := dial(s, alice, "a1", nil), dial(s, second, "a2", nil), dial(s, bob, "b", nil)

	s.Do("POST", "/v1/logout/all", second.Token, nil, http.StatusNoContent, nil)
	revoked := time.Now()
	wantSessionEnded(t, "a1", a1, revoked)
	wantSessionEnded(t, "a2", a2, revoked)
	for _, u := range []apptest.User{alice, second} {
		if got := upgradeStatus(t, s, u.Token); got != http.StatusUnauthorized {
			t.Errorf("upgrade after logging out everywhere: %d, want 401", got)
		}
	}
	wantOpen(t, "bob", b)
	// Logging in again opens a socket again.
	dial(s, s.LogIn(alice), "a3", nil).Conn.Close(websocket.StatusNormalClosure, "")
}

// A refreshed access token opens sockets; a refresh token used twice ends the session and
// closes its socket.
func TestReusedRefreshTokenClosesTheSocket(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	var fresh struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
	}
	s.Do("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": alice.RefreshToken}, http.StatusOK, &fresh)
	refreshed := alice
	refreshed.Token = fresh.Token
	ws := dial(s, refreshed, "a", nil)

	s.Do("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": alice.RefreshToken}, http.StatusUnauthorized, nil)
	wantSessionEnded(t, "socket of the session whose refresh token was reused", ws, time.Now())
}

// The access token of a real session signed with another secret is refused by the API and the
// gateway alike: both go through auth.Authenticator.
func TestForeignSignedTokenIsRefusedByAPIAndGateway(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.AccessTTL = time.Hour })
	alice := s.SignUp("alice")
	foreign, err := auth.NewTokens([]byte(strings.Repeat("f", auth.MinSecretBytes)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := foreign.Issue(alice.ID, alice.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if got := meStatus(t, s, forged); got != http.StatusUnauthorized {
		t.Errorf("API with a foreign-signed token: %d, want 401", got)
	}
	if got := upgradeStatus(t, s, forged); got != http.StatusUnauthorized {
		t.Errorf("upgrade with a foreign-signed token: %d, want 401", got)
	}
	if got := upgradeStatus(t, s, alice.Token); got != http.StatusSwitchingProtocols {
		t.Errorf("upgrade with the real token: %d, want 101", got)
	}
}

// An auth frame with a refreshed token of the socket's own session keeps the socket open past
// the expiry of the token it connected with, until the new token's; a refused token, or one of
// another session, changes nothing.
func TestAuthFrameRenewsTheSocket(t *testing.T) {
	const ttl = 6 * time.Second
	s := apptest.Start(t, func(c *app.Config) { c.AccessTTL = ttl })
	alice := s.SignUp("alice")
	ws := apptest.Dial(t, apptest.WSURLFor(s.WSURL, alice.Token, "a", nil))
	welcome := ws.NextOf(protocol.TypeWelcome, wait)
	first := time.UnixMilli(welcome.ExpiresAt)
	if d := time.Until(first); d <= 0 || d > ttl {
		t.Fatalf("welcome expires_at is %v from now, want within the %v token lifetime", d, ttl)
	}

	ws.Send(protocol.ClientFrame{Type: protocol.TypeAuth, ID: "forged", Token: alice.Token + "x"})
	if e := ws.NextOf(protocol.TypeError, wait); e.Ref != "forged" || e.Code != string(protocol.CodeUnauthorized) {
		t.Fatalf("auth with a forged token: %+v, want unauthorized", e)
	}
	other := s.LogIn(alice) // same user, another login session
	ws.Send(protocol.ClientFrame{Type: protocol.TypeAuth, ID: "other", Token: other.Token})
	if e := ws.NextOf(protocol.TypeError, wait); e.Ref != "other" || e.Code != string(protocol.CodeUnauthorized) {
		t.Fatalf("auth with another session's token: %+v, want unauthorized", e)
	}

	// Tokens carry whole seconds: refresh when the new one must expire at least 2 s later.
	time.Sleep(time.Until(first.Add(2100*time.Millisecond - ttl)))
	var fresh struct {
		Token string `json:"token"`
	}
	s.Do("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": alice.RefreshToken}, http.StatusOK, &fresh)
	ws.Send(protocol.ClientFrame{Type: protocol.TypeAuth, ID: "renew", Token: fresh.Token})
	a := ws.NextOf(protocol.TypeAuth, wait)
	renewed := time.UnixMilli(a.ExpiresAt)
	if a.Ref != "renew" || !renewed.After(first.Add(time.Second)) {
		t.Fatalf("auth answer %+v: expires %v, want after the first token's %v", a, renewed, first)
	}
	time.Sleep(time.Until(first.Add(200 * time.Millisecond)))
	wantOpen(t, "socket after its first token expired", ws)
	if code := ws.CloseStatus(ttl + wait); code != websocket.StatusCode(protocol.CloseUnauthorized) {
		t.Fatalf("closed with %d, want %d when the renewed token expired", code, protocol.CloseUnauthorized)
	}
	if early := time.Until(renewed); early > 0 {
		t.Fatalf("closed %v before the renewed token expired", early)
	}
}

// A socket renewed with an auth frame is still bound to its login session: ending the session
// closes it with 4403, as it does a socket that was never renewed.
func TestRenewedSocketIsClosedWhenItsSessionEnds(t *testing.T) {
	s := apptest.Start(t)
	alice := s.SignUp("alice")
	ws := apptest.Dial(t, apptest.WSURLFor(s.WSURL, alice.Token, "a", nil))
	ws.NextOf(protocol.TypeWelcome, wait)
	var fresh struct {
		Token string `json:"token"`
	}
	s.Do("POST", "/v1/token/refresh", "", map[string]string{"refresh_token": alice.RefreshToken}, http.StatusOK, &fresh)
	ws.Send(protocol.ClientFrame{Type: protocol.TypeAuth, ID: "renew", Token: fresh.Token})
	if a := ws.NextOf(protocol.TypeAuth, wait); a.Ref != "renew" {
		t.Fatalf("auth answer %+v", a)
	}
	s.Do("POST", "/v1/logout", fresh.Token, nil, http.StatusNoContent, nil)
	wantSessionEnded(t, "renewed socket", ws, time.Now())
}

// Deleting an account closes its sockets with 4401 at once (the API announces it on
// account.deleted.<user>), and nobody else's.
func TestDeletedAccountsSocketsAreClosed(t *testing.T) {
	s := apptest.Start(t)
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	a, b := dial(s, alice, "a", nil), dial(s, bob, "b", nil)
	s.Do("DELETE", "/v1/me", alice.Token, map[string]string{"password": "password-alice"}, http.StatusNoContent, nil)
	if code := a.CloseStatus(wait); code != websocket.StatusCode(protocol.CloseUnauthorized) {
		t.Fatalf("deleted account's socket closed with %d, want %d", code, protocol.CloseUnauthorized)
	}
	wantOpen(t, "bob", b)
}
