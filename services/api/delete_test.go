package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

// DELETE /v1/me: the password is checked; then the account is a tombstone (its tokens refused,
// its profile gone, its handle never given again), its devices, push tokens and mutes are gone,
// the deletion is an event on STATE, and its messages stay under its user id.
func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var s sessionJSON
	e.call(t, "POST", "/v1/signup", "", map[string]string{"handle": "alice", "password": "correct horse"}, http.StatusCreated, &s)
	bob, bobToken := e.user(t, "bob")
	alice := s.User.ID
	conv := "g01"
	e.conversation(t, conv, store.Member{UserID: alice}, store.Member{UserID: bob.ID})
	e.insert(t, conv, 1, alice)
	e.call(t, "PUT", "/v1/devices/phone/push-token", s.Token, map[string]string{"platform": "ios", "token": "fcm-1"}, http.StatusOK, nil)
	e.call(t, "PUT", "/v1/conversations/"+conv+"/mute", s.Token, map[string]bool{"muted": true}, http.StatusOK, nil)
	e.call(t, "PUT", "/v1/conversations/"+conv+"/mute", bobToken, map[string]bool{"muted": true}, http.StatusOK, nil)
	ctx := testContext(t)
	if err := e.store.PutDevice(ctx, store.Device{UserID: alice, DeviceID: "phone", CreatedAt: time.Now(), LastSeen: time.Now()}); err != nil {
		t.Fatal(err)
	}

	e.wantError(t, "DELETE", "/v1/me", s.Token, map[string]string{}, http.StatusBadRequest, CodeInvalidRequest)
	e.wantError(t, "DELETE", "/v1/me", s.Token, map[string]string{"password": "wrong horse"}, http.StatusUnauthorized, CodeBadCredentials)
	e.wantError(t, "DELETE", "/v1/me", "", map[string]string{"password": "correct horse"}, http.StatusUnauthorized, CodeUnauthorized)
	e.call(t, "GET", "/v1/me", s.Token, nil, http.StatusOK, nil) // still there after refusals

	e.call(t, "DELETE", "/v1/me", s.Token, map[string]string{"password": "correct horse"}, http.StatusNoContent, nil)

	e.wantError(t, "GET", "/v1/me", s.Token, nil, http.StatusUnauthorized, CodeUnauthorized)
	e.wantError(t, "DELETE", "/v1/me", s.Token, map[string]string{"password": "correct horse"}, http.StatusUnauthorized, CodeUnauthorized)
	e.wantError(t, "POST", "/v1/login", "", map[string]string{"handle": "alice", "password": "correct horse"}, http.StatusUnauthorized, CodeBadCredentials)
	e.wantError(t, "POST", "/v1/signup", "", map[string]string{"handle": "alice", "password": "another pass"}, http.StatusConflict, CodeHandleTaken)
	e.wantError(t, "GET", "/v1/users/"+alice, bobToken, nil, http.StatusNotFound, CodeUserNotFound)
	e.wantError(t, "GET", "/v1/users?handle=alice", bobToken, nil, http.StatusNotFound, CodeUserNotFound)
	e.wantError(t, "POST", "/v1/conversations/direct", bobToken, map[string]string{"user_id": alice}, http.StatusNotFound, CodeUserNotFound)

	if ds, err := e.store.Devices(ctx, alice); err != nil || len(ds) != 0 {
		t.Errorf("devices after deletion: %v, %v", ds, err)
	}
	if ts, err := e.store.PushTokens(ctx, alice); err != nil || len(ts) != 0 {
		t.Errorf("push tokens after deletion: %v, %v", ts, err)
	}
	kv, err := e.js.KeyValue(ctx, streams.PushSettingsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, streams.PushSettingKey(alice, conv)); err == nil {
		t.Error("the deleted account's mute is still set")
	}
	if _, err := kv.Get(ctx, streams.PushSettingKey(bob.ID, conv)); err != nil {
		t.Errorf("bob's mute: %v", err)
	}
	stream, err := e.js.Stream(ctx, streams.StateStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, streams.AccountSubject("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := streams.DecodeStateEvent(raw.Subject, raw.Data); err != nil || ev.Kind != streams.StateAccountDeleted || ev.Account.UserID != alice {
		t.Errorf("last event of alice's account: %+v, %v", ev, err)
	}

	var page struct {
		Messages []protocol.Event `json:"messages"`
	}
	e.call(t, "GET", "/v1/conversations/"+conv+"/messages", bobToken, nil, http.StatusOK, &page)
	if len(page.Messages) != 1 || page.Messages[0].SenderID != alice {
		t.Errorf("bob's history after alice's deletion: %+v", page.Messages)
	}
}
