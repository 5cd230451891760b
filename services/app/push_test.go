package app_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/services/push"
	"github.com/natter-chat/natter/services/push/pushtest"
	"github.com/natter-chat/natter/streams"
)

// finalEntry waits for the final push ledger entry of (user, message, device).
func finalEntry(t *testing.T, l *push.Ledger, user, message, device string) streams.PushLedgerEntry {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		e, ok, err := l.Latest(context.Background(), user, message, device)
		if err != nil {
			t.Fatal(err)
		}
		if ok && e.Final() {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final push ledger entry for %s/%s/%s", user, message, device)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPushReachesAnOfflineMemberThroughFCM(t *testing.T) {
	fcm := pushtest.New(t, "natter-e2e")
	s := apptest.Start(t, func(c *app.Config) {
		c.Push.Endpoint, c.Push.ProjectID = fcm.Endpoint(), fcm.Project
		c.Push.TokenSource, c.Push.Transport = fcm.TokenSource(), fcm.Transport()
		c.Fanout.PushOnlineLedger = true
	})
	js, err := jetstream.New(s.Run.NC)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := push.OpenLedger(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := s.SignUp("alice"), s.SignUp("bob")
	conv := s.Direct(alice, bob)
	s.Do("PUT", "/v1/devices/phone/push-token", bob.Token, map[string]string{"platform": "android", "token": "bob-phone-fcm-token"}, http.StatusOK, nil)
	a := live(s, alice, "a")

	// Bob has no socket: his phone gets exactly one push.
	ack := sendText(a, conv, "c1", "hello bob")
	r := fcm.Next(t, wait)
	if r.Path != fcm.SendPath() || r.Authorization != "Bearer "+pushtest.AccessToken {
		t.Fatalf("request %s %s %q", r.Method, r.Path, r.Authorization)
	}
	for path, want := range map[string]string{
		"token": "bob-phone-fcm-token", "notification.title": "alice", "notification.body": "hello bob",
		"data.conversation_id": conv, "data.message_id": ack.MessageID, "data.sender_id": alice.ID,
		"data.seq": strconv.FormatUint(ack.Seq, 10), "data.badge": "1",
		"android.collapse_key": conv, "apns.headers.apns-collapse-id": conv, "apns.payload.aps.badge": "1",
	} {
		if got := r.Str(strings.Split(path, ".")...); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if e := finalEntry(t, ledger, bob.ID, ack.MessageID, "phone"); e.Outcome != streams.PushSent || e.Provider != "fcm" {
		t.Fatalf("ledger %+v", e)
	}
	fcm.None(t, 300*time.Millisecond)

	// Muted by the API: nothing is sent, and the ledger says why.
	s.Do("PUT", "/v1/conversations/"+conv+"/mute", bob.Token, map[string]bool{"muted": true}, http.StatusOK, nil)
	muted := sendText(a, conv, "c2", "psst")
	if e := finalEntry(t, ledger, bob.ID, muted.MessageID, "phone"); e.Outcome != streams.PushSkipped || e.Reason != streams.PushReasonMuted {
		t.Fatalf("ledger %+v", e)
	}
	s.Do("PUT", "/v1/conversations/"+conv+"/mute", bob.Token, map[string]bool{"muted": false}, http.StatusOK, nil)

	// Bob connected: no push; the ledger says he was online on that device.
	b := live(s, bob, "laptop")
	online := sendText(a, conv, "c3", "you're here")
	if f := nextEvent(b); f.MessageID != online.MessageID {
		t.Fatalf("bob got %+v", f)
	}
	e := finalEntry(t, ledger, bob.ID, online.MessageID, "laptop")
	if e.Outcome != streams.PushSkipped || e.Reason != streams.PushReasonOnline {
		t.Fatalf("ledger %+v", e)
	}
	fcm.None(t, 500*time.Millisecond)
	entries, err := ledger.Entries(context.Background(), bob.ID, online.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if why := push.Explain(bob.ID, online.MessageID, entries); !strings.Contains(why, "device laptop: no push: you were online") {
		t.Fatalf("why:\n%s", why)
	}
	if n := len(fcm.Requests()); n != 1 {
		t.Fatalf("%d FCM requests, want 1", n)
	}
}
