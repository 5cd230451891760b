package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

const userID = "01JALICE0000000000000000AA"

type sessionsEnv struct {
	s         *Sessions
	st        store.Store
	auth      *Authenticator
	announced chan string // session ids announced revoked
}

func newSessionsEnv(t *testing.T) *sessionsEnv {
	t.Helper()
	st := pebbletest.Open(t)
	if err := st.CreateUser(t.Context(), store.User{ID: userID, Handle: "alice", DisplayName: "alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	bus := natsxtest.Start(t)
	tokens, err := NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSessions(tokens, st, bus.NC, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e := &sessionsEnv{s: s, st: st, auth: NewAuthenticator(tokens, st), announced: make(chan string, 16)}
	sub, err := bus.NC.Subscribe(streams.SessionRevokedAll, func(m *nats.Msg) {
		if _, sid, ok := streams.ParseSessionRevokedSubject(m.Subject); ok {
			e.announced <- sid
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := bus.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *sessionsEnv) start(t *testing.T) Issued {
	t.Helper()
	is, err := e.s.Start(t.Context(), userID, "test\x00agent/1.0")
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// wantAnnounced waits for the revocation of sid to be announced (Revoke flushes before it
// returns, so it is on its way already).
func (e *sessionsEnv) wantAnnounced(t *testing.T, sid string) {
	t.Helper()
	select {
	case got := <-e.announced:
		if got != sid {
			t.Fatalf("announced %s revoked, want %s", got, sid)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("revocation of %s never announced", sid)
	}
}

func wantRefused(t *testing.T, err, reason error, what string) {
	t.Helper()
	if !errors.Is(err, ErrRefused) || !errors.Is(err, reason) {
		t.Fatalf("%s: got %v, want a refusal for %v", what, err, reason)
	}
}

func TestRefreshRotates(t *testing.T) {
	e := newSessionsEnv(t)
	ctx := t.Context()
	first := e.start(t)
	if first.Session.UserAgent != "testagent/1.0" {
		t.Errorf("user agent kept as %q", first.Session.UserAgent)
	}
	if c, err := e.auth.Authenticate(ctx, first.AccessToken); err != nil || c.SessionID != first.Session.ID {
		t.Fatalf("first access token: %+v %v", c, err)
	}
	second, err := e.s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.Session.ID != first.Session.ID || second.RefreshToken == first.RefreshToken || second.AccessToken == "" {
		t.Fatalf("refresh gave %+v after %+v: want the same session with a new refresh token", second, first)
	}
	third, err := e.s.Refresh(ctx, second.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.Authenticate(ctx, third.AccessToken); err != nil {
		t.Fatalf("access token of the third pair: %v", err)
	}
	stored, err := e.st.Session(ctx, first.Session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.RefreshHash), third.RefreshToken) || string(stored.RefreshHash) != string(RefreshHash(third.RefreshToken)) {
		t.Fatal("the store does not keep the hash of the current refresh token (and only the hash)")
	}
}

// A rotated-away refresh token used again means two parties hold the session: it ends.
func TestRefreshReuseRevokesTheSession(t *testing.T) {
	e := newSessionsEnv(t)
	ctx := t.Context()
	first := e.start(t)
	other := e.start(t) // another device of the same account: untouched
	second, err := e.s.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}

	_, err = e.s.Refresh(ctx, first.RefreshToken)
	wantRefused(t, err, ErrRefreshReused, "reused refresh token")
	e.wantAnnounced(t, first.Session.ID)
	_, err = e.s.Refresh(ctx, second.RefreshToken)
	wantRefused(t, err, ErrSessionEnded, "current refresh token of the revoked session")
	_, err = e.auth.Authenticate(ctx, second.AccessToken)
	wantRefused(t, err, ErrSessionEnded, "access token of the revoked session")
	if _, err := e.auth.Authenticate(ctx, other.AccessToken); err != nil {
		t.Fatalf("the other session's access token: %v", err)
	}
	if _, err := e.s.Refresh(ctx, other.RefreshToken); err != nil {
		t.Fatalf("the other session's refresh: %v", err)
	}
}

// A made-up refresh token naming a session is refused and does not end it: only a token this
// server issued for the session counts as reuse.
func TestRefreshRefusesMadeUpTokens(t *testing.T) {
	e := newSessionsEnv(t)
	ctx := t.Context()
	is := e.start(t)
	foreign, err := NewTokens([]byte(strings.Repeat("x", MinSecretBytes)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreignToken, _, err := foreign.NewRefreshToken(is.Session.ID)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(is.RefreshToken, refreshPrefix), ".")
	flipped := refreshPrefix + parts[0] + "." + strings.Repeat("A", len(parts[1])) + "." + parts[2]
	for name, tok := range map[string]string{
		"foreign-signed": foreignToken, "flipped secret": flipped, "empty": "", "access token": is.AccessToken,
		"too long": is.RefreshToken + strings.Repeat("A", MaxRefreshTokenBytes),
	} {
		_, err := e.s.Refresh(ctx, tok)
		wantRefused(t, err, ErrInvalidToken, name)
	}
	if _, err := e.s.Refresh(ctx, is.RefreshToken); err != nil {
		t.Fatalf("the real refresh token after made-up ones: %v", err)
	}
}

func TestRefreshAfterIdleLifetime(t *testing.T) {
	e := newSessionsEnv(t)
	is := e.start(t)
	e.s.now = func() time.Time { return time.Now().Add(e.s.idle + time.Minute) }
	_, err := e.s.Refresh(t.Context(), is.RefreshToken)
	wantRefused(t, err, ErrSessionEnded, "refresh after the idle lifetime")
	if live, err := e.s.Active(t.Context(), userID); err != nil || len(live) != 0 {
		t.Fatalf("active sessions after the idle lifetime: %+v %v", live, err)
	}
}

func TestRevokeAll(t *testing.T) {
	e := newSessionsEnv(t)
	ctx := t.Context()
	a, b := e.start(t), e.start(t)
	if _, err := e.s.Revoke(ctx, a.Session.ID); err != nil {
		t.Fatal(err)
	}
	e.wantAnnounced(t, a.Session.ID)
	c := e.start(t)
	if live, err := e.s.Active(ctx, userID); err != nil || len(live) != 2 || live[0].ID != b.Session.ID || live[1].ID != c.Session.ID {
		t.Fatalf("active sessions: %+v %v, want b and c", live, err)
	}
	n, err := e.s.RevokeAll(ctx, userID)
	if err != nil || n != 2 {
		t.Fatalf("revoke all: %d %v, want 2", n, err)
	}
	e.wantAnnounced(t, b.Session.ID)
	e.wantAnnounced(t, c.Session.ID)
	for _, is := range []Issued{a, b, c} {
		_, err := e.auth.Authenticate(ctx, is.AccessToken)
		wantRefused(t, err, ErrSessionEnded, "access token after logout everywhere")
		_, err = e.s.Refresh(ctx, is.RefreshToken)
		wantRefused(t, err, ErrSessionEnded, "refresh token after logout everywhere")
	}
	if _, err := e.s.Revoke(ctx, "01JNOSESSION00000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke an unknown session: %v", err)
	}
}

func TestParseRefreshToken(t *testing.T) {
	tk, err := NewTokens(secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, hash, err := tk.NewRefreshToken("01JSESS0000000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	sid, h, err := tk.ParseRefreshToken(tok)
	if err != nil || sid != "01JSESS0000000000000000000" || string(h) != string(hash) {
		t.Fatalf("parse: %q %x %v", sid, h, err)
	}
	if len(tok) > MaxRefreshTokenBytes {
		t.Fatalf("a token of a ULID session has %d bytes, over the %d accepted", len(tok), MaxRefreshTokenBytes)
	}
	long, _, err := tk.NewRefreshToken(strings.Repeat("s", 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tk.ParseRefreshToken(long); err != nil {
		t.Fatalf("a token of the longest session id (%d bytes): %v", len(long), err)
	}
}

func FuzzParseRefreshToken(f *testing.F) {
	tk, err := NewTokens(secret, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	tok, _, err := tk.NewRefreshToken("01JSESS0000000000000000000")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{tok, "", "nr1.", "nr1.a.b.c", "nr1.s.AAAA.AAAA", tok + "x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sid, hash, err := tk.ParseRefreshToken(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			return
		}
		// Accepted: it must be spelled as this key issues tokens, for a valid session id.
		parts := strings.Split(in, ".")
		if len(parts) != 4 || parts[1] != sid || !streams.ValidToken(sid) || string(hash) != string(RefreshHash(in)) ||
			parts[3] != b64.EncodeToString(tk.refreshMAC(sid, parts[2])) {
			t.Fatalf("accepted %q as session %q", in, sid)
		}
	})
}
