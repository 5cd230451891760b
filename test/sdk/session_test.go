package sdk

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/sdk/go/client"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// A Client whose TokenSource is a Session outlives its short access tokens: the server closes
// the socket with 4401 when its token expires, the Session refreshes (rotating the refresh
// token), the Client reconnects and sends keep working; when the session is ended from
// elsewhere the socket is closed with 4403 and the Client stops.
func TestSessionRefreshesAndEnds(t *testing.T) {
	s := apptest.Start(t, func(c *app.Config) { c.AccessTTL = 2 * time.Second })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	ctx := context.Background()

	sess, err := client.Login(ctx, s.APIURL, "alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var rotated []string
	sess.OnRefresh = func(tok string) { mu.Lock(); rotated = append(rotated, tok); mu.Unlock() }
	first := sess.RefreshToken()
	c, err := client.Dial(client.Config{URL: s.WSURL, TokenSource: sess.Token, DeviceID: "a",
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("not ready: %v", c.Err())
	}

	// Poll until the access token has been renewed (it lives 2 s).
	deadline := time.Now().Add(30 * time.Second)
	for sess.RefreshToken() == first {
		if time.Now().After(deadline) {
			t.Fatal("the session never refreshed")
		}
		if _, err := sess.Token(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	if len(rotated) == 0 || rotated[len(rotated)-1] != sess.RefreshToken() {
		t.Fatalf("OnRefresh saw %d tokens, not the current one", len(rotated))
	}
	mu.Unlock()
	tok, err := sess.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status, raw := apptest.Request(t, "GET", s.APIURL+"/v1/me", tok, nil); status != http.StatusOK {
		t.Fatalf("refreshed token: %d %s", status, raw)
	}
	// The client reconnected past the first token's expiry, and sends.
	if _, err := c.Send(ctx, conv, "still here"); err != nil {
		t.Fatalf("send after the first token expired: %v", err)
	}
	// The old refresh token was rotated away: using it now ends the session for every holder.
	stale := client.Resume(s.APIURL, first)
	if _, err := stale.Token(ctx); !errors.Is(err, client.ErrSessionEnded) {
		t.Fatalf("stale refresh token: %v, want ErrSessionEnded", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for c.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the client still runs after its session ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Closed with 4403, or (when the revocation came while it was reconnecting after a 4401)
	// refused a refresh: either way it knows its session ended.
	var ce *client.CloseError
	if !errors.Is(c.Err(), client.ErrSessionEnded) && (!errors.As(c.Err(), &ce) || ce.Code != protocol.CloseSessionEnded) {
		t.Fatalf("client ended with %v, want close code %d or ErrSessionEnded", c.Err(), protocol.CloseSessionEnded)
	}
	if tok, err := sess.Token(ctx); err == nil {
		if status, _ := apptest.Request(t, "GET", s.APIURL+"/v1/me", tok, nil); status != http.StatusUnauthorized {
			t.Fatalf("access token of the ended session: %d, want 401", status)
		}
	}
	stale = client.Resume(s.APIURL, sess.RefreshToken())
	if _, err := stale.Token(ctx); !errors.Is(err, client.ErrSessionEnded) {
		t.Fatalf("refresh of the ended session: %v, want ErrSessionEnded", err)
	}
}

func TestSessionLogout(t *testing.T) {
	s := apptest.Start(t)
	s.SignUp("alice")
	ctx := context.Background()
	sess, err := client.Login(ctx, s.APIURL, "alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sess.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if status, _ := apptest.Request(t, "GET", s.APIURL+"/v1/me", tok, nil); status != http.StatusUnauthorized {
		t.Fatalf("token after logout: %d, want 401", status)
	}
	if _, err := client.Login(ctx, s.APIURL, "alice", "wrong"); !errors.Is(err, client.ErrBadCredentials) {
		t.Fatalf("login with a wrong password: %v", err)
	}
}

// A Client whose TokenSource is a Session renews its open socket with auth frames before each
// access token expires: it outlives several tokens on its first connection.
func TestClientRenewsItsSocket(t *testing.T) {
	const ttl = 8 * time.Second
	s := apptest.Start(t, func(c *app.Config) { c.AccessTTL = ttl })
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	ctx := context.Background()
	sess, err := client.Login(ctx, s.APIURL, "alice", "password-alice")
	if err != nil {
		t.Fatal(err)
	}
	first := sess.RefreshToken()
	c, err := client.Dial(client.Config{URL: s.WSURL, TokenSource: sess.Token, DeviceID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("not ready: %v", c.Err())
	}
	// Past the first token's expiry (at most ttl away), with a second to spare.
	time.Sleep(ttl + time.Second)
	if sess.RefreshToken() == first {
		t.Fatal("the session never refreshed")
	}
	if _, err := c.Send(ctx, conv, "still here"); err != nil {
		t.Fatalf("send after the first token expired: %v", err)
	}
	if n := c.Connects(); n != 1 {
		t.Fatalf("%d connections, want 1: the socket was not renewed", n)
	}
}
