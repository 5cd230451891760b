package streams

import (
	"strconv"
	"strings"
	"testing"
)

func TestSubjectHelpers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ChatSubject("c1", KindMsg), "chat.c1.msg"},
		{ChatSubject("c1", KindMember), "chat.c1.member"},
		{ChatSubject("c1", "*"), "chat.c1.*"},
		{PresenceSubject("u1", "d1"), "presence.u1.d1"},
		{PushSubject("u1"), "push.u1"},
		{DeliverSubject("gw-1"), "gw.gw-1.deliver"},
		{SessionRevokedSubject("u1", "s1"), "session.revoked.u1.s1"},
		{RouteKey("u1", "d1"), "u1.d1"},
		{DedupeID("u1", "c-7"), "u1:c-7"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestChatSubjectRoundTrip(t *testing.T) {
	for _, conv := range []string{"c1", "01J9ZK3V8Q2W5X7Y9A1B3C5D7E", "a_b-c", strings.Repeat("z", 64)} {
		for _, kind := range []string{KindMsg, KindMember, KindRead, KindDelivered, KindEdit} {
			subj := ChatSubject(conv, kind)
			gotConv, gotKind, ok := ParseChatSubject(subj)
			if !ok || gotConv != conv || gotKind != kind {
				t.Errorf("ParseChatSubject(%q) = %q, %q, %v; want %q, %q, true", subj, gotConv, gotKind, ok, conv, kind)
			}
		}
	}
}

func TestParseChatSubjectRejects(t *testing.T) {
	for _, s := range []string{
		"", "chat", "chat.", "chat.c1", "chat.c1.", "chat..msg", "chat.c1.msg.extra", ".c1.msg",
		"talk.c1.msg", "CHAT.c1.msg", "presence.u1.d1", "gw.g1.deliver", "chat.c1.msg.", "chat...",
	} {
		if conv, kind, ok := ParseChatSubject(s); ok || conv != "" || kind != "" {
			t.Errorf("ParseChatSubject(%q) = %q, %q, %v; want rejected", s, conv, kind, ok)
		}
	}
}

func TestParseRouteKey(t *testing.T) {
	u, d, ok := ParseRouteKey(RouteKey("u_alice", "d-phone"))
	if !ok || u != "u_alice" || d != "d-phone" {
		t.Fatalf("round trip: %q, %q, %v", u, d, ok)
	}
	for _, k := range []string{"", "u1", "u1.", ".d1", ".", "u1.d1.x", "u1..d1", "..", "u1.d1."} {
		if u, d, ok := ParseRouteKey(k); ok || u != "" || d != "" {
			t.Errorf("ParseRouteKey(%q) = %q, %q, %v; want rejected", k, u, d, ok)
		}
	}
}

// Every token that passes ValidToken yields a subject that parses back to itself: no accepted
// id can add tokens or wildcards to a subject.
func TestValidTokensMakeParseableSubjects(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		if ValidToken(string([]byte{byte(c)})) {
			all = append(all, byte(c))
		}
	}
	if len(all) != 26+26+10+2 {
		t.Fatalf("%d single-byte tokens accepted, want 64: %q", len(all), all)
	}
	for i := 0; i+8 <= len(all); i += 8 {
		tok := string(all[i : i+8])
		if c, k, ok := ParseChatSubject(ChatSubject(tok, tok)); !ok || c != tok || k != tok {
			t.Errorf("token %q: parsed %q %q %v", tok, c, k, ok)
		}
		if u, d, ok := ParseRouteKey(RouteKey(tok, tok)); !ok || u != tok || d != tok {
			t.Errorf("token %q: route key parsed %q %q %v", tok, u, d, ok)
		}
	}
}

func TestSessionRevokedSubject(t *testing.T) {
	u, sid, ok := ParseSessionRevokedSubject(SessionRevokedSubject("01J9ZK3V8Q2W5X7Y9A1B3C5D7E", "01J9ZK3V8Q2W5X7Y9A1B3C5D7F"))
	if !ok || u != "01J9ZK3V8Q2W5X7Y9A1B3C5D7E" || sid != "01J9ZK3V8Q2W5X7Y9A1B3C5D7F" {
		t.Fatalf("round trip: %q %q %v", u, sid, ok)
	}
	for _, s := range []string{"", "session.revoked.u1", "session.revoked.u1.s1.x", "session.revoked..s1",
		"session.ended.u1.s1", "chat.revoked.u1.s1", "session.revoked.u*.s1"} {
		if _, _, ok := ParseSessionRevokedSubject(s); ok {
			t.Errorf("ParseSessionRevokedSubject(%q) accepted", s)
		}
	}
}

func TestVersionValueIsVersion(t *testing.T) {
	if VersionValue != strconv.Itoa(Version) {
		t.Fatalf("VersionValue %q, Version %d", VersionValue, Version)
	}
}
