package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

func (e *env) pushTokens(t *testing.T, user string) map[string]store.PushToken {
	t.Helper()
	ts, err := e.store.PushTokens(testContext(t), user)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.PushToken{}
	for _, tk := range ts {
		out[tk.DeviceID] = tk
	}
	return out
}

func TestPushTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, aliceTok := e.user(t, "alice")
	bob, bobTok := e.user(t, "bob")

	var out struct {
		PushToken struct {
			DeviceID  string `json:"device_id"`
			Platform  string `json:"platform"`
			UpdatedAt string `json:"updated_at"`
		} `json:"push_token"`
	}
	e.call(t, "PUT", "/v1/devices/phone/push-token", aliceTok, map[string]string{"platform": "android", "token": "fcm:tok-1"}, http.StatusOK, &out)
	if out.PushToken.DeviceID != "phone" || out.PushToken.Platform != "android" || out.PushToken.UpdatedAt == "" {
		t.Fatalf("answer %+v", out)
	}
	// Replaced, not added.
	e.call(t, "PUT", "/v1/devices/phone/push-token", aliceTok, map[string]string{"platform": "android", "token": "fcm:tok-2"}, http.StatusOK, nil)
	e.call(t, "PUT", "/v1/devices/tablet/push-token", aliceTok, map[string]string{"platform": "ios", "token": "fcm:tok-3"}, http.StatusOK, nil)
	// Bob's "phone" is another device: device ids are per account.
	e.call(t, "PUT", "/v1/devices/phone/push-token", bobTok, map[string]string{"platform": "web", "token": "fcm:bob"}, http.StatusOK, nil)
	got := e.pushTokens(t, alice.ID)
	if len(got) != 2 || got["phone"].Token != "fcm:tok-2" || got["tablet"].Token != "fcm:tok-3" || got["tablet"].Platform != "ios" {
		t.Fatalf("alice's tokens %+v", got)
	}

	// Bob deleting his phone's token leaves Alice's alone.
	e.call(t, "DELETE", "/v1/devices/phone/push-token", bobTok, nil, http.StatusNoContent, nil)
	e.call(t, "DELETE", "/v1/devices/phone/push-token", bobTok, nil, http.StatusNoContent, nil) // again: still fine
	if len(e.pushTokens(t, bob.ID)) != 0 || len(e.pushTokens(t, alice.ID)) != 2 {
		t.Fatal("delete touched the wrong tokens")
	}
	e.call(t, "DELETE", "/v1/devices/tablet/push-token", aliceTok, nil, http.StatusNoContent, nil)
	if got := e.pushTokens(t, alice.ID); len(got) != 1 || got["phone"].Token != "fcm:tok-2" {
		t.Fatalf("after delete %+v", got)
	}

	for name, body := range map[string]any{
		"no platform":      map[string]string{"token": "x"},
		"unknown platform": map[string]string{"platform": "symbian", "token": "x"},
		"no token":         map[string]string{"platform": "ios"},
		"space in token":   map[string]string{"platform": "ios", "token": "a b"},
		"long token":       map[string]string{"platform": "ios", "token": strings.Repeat("t", MaxPushToken+1)},
		"non-ascii token":  map[string]string{"platform": "ios", "token": "tök"},
	} {
		t.Run(name, func(t *testing.T) {
			e.wantError(t, "PUT", "/v1/devices/phone/push-token", aliceTok, body, http.StatusBadRequest, CodeInvalidRequest)
		})
	}
	e.wantError(t, "PUT", "/v1/devices/phone/push-token", aliceTok, `{"platform":`, http.StatusBadRequest, protocol.CodeInvalidJSON)
	e.wantError(t, "PUT", "/v1/devices/"+strings.Repeat("d", 65)+"/push-token", aliceTok,
		map[string]string{"platform": "ios", "token": "x"}, http.StatusBadRequest, CodeInvalidRequest)
	e.wantError(t, "PUT", "/v1/devices/a%2Ab/push-token", aliceTok, map[string]string{"platform": "ios", "token": "x"}, http.StatusBadRequest, CodeInvalidRequest)
	e.wantError(t, "PUT", "/v1/devices/phone/push-token", "", map[string]string{"platform": "ios", "token": "x"}, http.StatusUnauthorized, CodeUnauthorized)
	e.wantError(t, "DELETE", "/v1/devices/phone/push-token", "", nil, http.StatusUnauthorized, CodeUnauthorized)
	if got := e.pushTokens(t, alice.ID); len(got) != 1 || got["phone"].Token != "fcm:tok-2" {
		t.Fatalf("bad requests changed tokens: %+v", got)
	}
}

func TestLogoutRemovesTheDeviceAndItsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, tok := e.user(t, "alice")
	ctx := testContext(t)
	for _, d := range []string{"phone", "laptop"} {
		if err := e.store.PutDevice(ctx, store.Device{UserID: alice.ID, DeviceID: d, Platform: "android", CreatedAt: time.Now(), LastSeen: time.Now()}); err != nil {
			t.Fatal(err)
		}
		e.call(t, "PUT", "/v1/devices/"+d+"/push-token", tok, map[string]string{"platform": "android", "token": "tok-" + d}, http.StatusOK, nil)
	}
	e.call(t, "POST", "/v1/logout", tok, map[string]string{"device_id": "phone"}, http.StatusNoContent, nil)
	if got := e.pushTokens(t, alice.ID); len(got) != 1 || got["laptop"].Token != "tok-laptop" {
		t.Fatalf("tokens after logout %+v", got)
	}
	devs, err := e.store.Devices(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].DeviceID != "laptop" {
		t.Fatalf("devices after logout %+v", devs)
	}
	// The logout ended the session of tok too.
	e.wantError(t, "POST", "/v1/logout", tok, map[string]string{"device_id": "phone"}, http.StatusUnauthorized, CodeUnauthorized)
	tok = e.session(t, alice.ID).AccessToken
	e.call(t, "POST", "/v1/logout", tok, map[string]string{"device_id": "phone"}, http.StatusNoContent, nil) // a device already forgotten: fine
	tok = e.session(t, alice.ID).AccessToken
	e.wantError(t, "POST", "/v1/logout", tok, map[string]string{"device_id": "a.b"}, http.StatusBadRequest, CodeInvalidRequest)
	e.wantError(t, "POST", "/v1/logout", "", map[string]string{"device_id": "laptop"}, http.StatusUnauthorized, CodeUnauthorized)
	e.call(t, "POST", "/v1/logout", tok, map[string]string{}, http.StatusNoContent, nil) // no device: the session only
	if got := e.pushTokens(t, alice.ID); len(got) != 1 {
		t.Fatalf("tokens after a logout without a device %+v", got)
	}
}

func TestMute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, aliceTok := e.user(t, "alice")
	bob, bobTok := e.user(t, "bob")
	carol, carolTok := e.user(t, "carol")
	e.conversation(t, "g1", store.Member{UserID: alice.ID}, store.Member{UserID: bob.ID}, store.Member{UserID: carol.ID, LeftSeq: 5})
	kv, err := e.js.KeyValue(testContext(t), streams.PushSettingsBucket)
	if err != nil {
		t.Fatal(err)
	}
	setting := func(user string) (streams.PushSetting, bool) {
		kve, err := kv.Get(testContext(t), streams.PushSettingKey(user, "g1"))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return streams.PushSetting{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		var s streams.PushSetting
		if err := json.Unmarshal(kve.Value(), &s); err != nil {
			t.Fatal(err)
		}
		return s, true
	}

	var out struct {
		ConversationID string `json:"conversation_id"`
		Muted          bool   `json:"muted"`
	}
	e.call(t, "PUT", "/v1/conversations/g1/mute", aliceTok, map[string]bool{"muted": true}, http.StatusOK, &out)
	if out.ConversationID != "g1" || !out.Muted {
		t.Fatalf("answer %+v", out)
	}
	if s, ok := setting(alice.ID); !ok || !s.Muted || s.UpdatedAt == 0 {
		t.Fatalf("alice's setting %+v %v", s, ok)
	}
	if _, ok := setting(bob.ID); ok {
		t.Fatal("muting for alice muted for bob")
	}
	e.call(t, "PUT", "/v1/conversations/g1/mute", aliceTok, map[string]bool{"muted": false}, http.StatusOK, &out)
	if _, ok := setting(alice.ID); ok || out.Muted {
		t.Fatal("unmute left the setting")
	}
	e.call(t, "PUT", "/v1/conversations/g1/mute", bobTok, map[string]bool{"muted": false}, http.StatusOK, nil) // never muted: fine

	e.wantError(t, "PUT", "/v1/conversations/g1/mute", aliceTok, map[string]string{}, http.StatusBadRequest, CodeInvalidRequest)
	e.wantError(t, "PUT", "/v1/conversations/g1/mute", aliceTok, map[string]string{"muted": "yes"}, http.StatusBadRequest, protocol.CodeInvalidJSON)

	// Not a member — a stranger, a former member, a conversation that does not exist, a malformed
	// id — gets exactly the answer every conversation endpoint gives.
	dave, daveTok := e.user(t, "dave")
	_, notMember := e.do(t, "GET", "/v1/conversations/g1", daveTok, nil)
	for _, c := range []struct{ token, conv string }{
		{daveTok, "g1"}, {carolTok, "g1"}, {aliceTok, "nope"}, {aliceTok, "bad.id"},
	} {
		status, raw := e.do(t, "PUT", "/v1/conversations/"+c.conv+"/mute", c.token, map[string]bool{"muted": true})
		if status != http.StatusNotFound || string(raw) != string(notMember) {
			t.Fatalf("%s: %d %s, want 404 %s", c.conv, status, raw, notMember)
		}
	}
	if _, ok := setting(dave.ID); ok {
		t.Fatal("a non-member muted")
	}
	if _, ok := setting(carol.ID); ok {
		t.Fatal("a former member muted")
	}
	e.wantError(t, "PUT", "/v1/conversations/g1/mute", "", map[string]bool{"muted": true}, http.StatusUnauthorized, CodeUnauthorized)
}
