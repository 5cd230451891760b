package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	goldenUser  = "01J9ZK2A4C6E8G0J2L4N6Q8S0U"
	goldenOther = "01J9ZK3B5D7F9H1K3M5P7R9T1V"
)

// Every state event kind: its golden bytes decode on its subject to exactly this event, and
// encode back to the same bytes.
func TestGoldenStateEvents(t *testing.T) {
	for _, c := range []struct {
		file, subject string
		want          StateEvent
	}{
		{"state_account_created.json", "state.account.alice_b", StateEvent{V: 1, Kind: StateAccountCreated, At: 1735689600123,
			Account: &AccountState{UserID: goldenUser, Handle: "alice_b", DisplayName: `Alice ✨ "B"`,
				PasswordHash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}}},
		{"state_profile_updated.json", "state.account.alice_b", StateEvent{V: 1, Kind: StateProfileUpdated, At: 1735689700456,
			Account: &AccountState{UserID: goldenUser, Handle: "alice_b", DisplayName: "Alice"}}},
		{"state_account_deleted.json", "state.account.alice_b", StateEvent{V: 1, Kind: StateAccountDeleted, At: 1735689800789,
			Account: &AccountState{UserID: goldenUser, Handle: "alice_b"}}},
		{"state_direct_opened.json", "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g", StateEvent{V: 1, Kind: StateDirectOpened, At: 1735689600500,
			Direct: &DirectState{ConversationID: "dk3v8q2w5x7y9a1b3c5d7e9f1g", UserIDs: []string{goldenUser, goldenOther}, CreatedBy: goldenUser}}},
		{"state_direct_requested.json", "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g", StateEvent{V: 1, Kind: StateDirectOpened, At: 1735689600500,
			Direct: &DirectState{ConversationID: "dk3v8q2w5x7y9a1b3c5d7e9f1g", UserIDs: []string{goldenUser, goldenOther}, CreatedBy: goldenUser, Request: true}}},
		{"state_direct_accepted.json", "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g", StateEvent{V: 1, Kind: StateDirectAccepted, At: 1735689600900,
			Direct: &DirectState{ConversationID: "dk3v8q2w5x7y9a1b3c5d7e9f1g", UserIDs: []string{goldenUser, goldenOther}, By: goldenOther}}},
		{"state_direct_ignored.json", "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g", StateEvent{V: 1, Kind: StateDirectIgnored, At: 1735689600800,
			Direct: &DirectState{ConversationID: "dk3v8q2w5x7y9a1b3c5d7e9f1g", UserIDs: []string{goldenUser, goldenOther}, By: goldenOther}}},
		{"state_user_blocked.json", "state.block." + goldenUser + "." + goldenOther, StateEvent{V: 1, Kind: StateUserBlocked, At: 1735689603000,
			Block: &BlockState{UserID: goldenUser, BlockedID: goldenOther}}},
		{"state_user_unblocked.json", "state.block." + goldenUser + "." + goldenOther, StateEvent{V: 1, Kind: StateUserUnblocked, At: 1735689604000,
			Block: &BlockState{UserID: goldenUser, BlockedID: goldenOther}}},
		{"state_presence_visibility_set.json", "state.privacy." + goldenUser, StateEvent{V: 1, Kind: StatePresenceSet, At: 1735689605000,
			Privacy: &PrivacyState{UserID: goldenUser, Presence: PresenceContacts}}},
		{"state_device_registered.json", "state.device." + goldenUser + ".d_phone", StateEvent{V: 1, Kind: StateDeviceRegistered, At: 1735689601000,
			Device: &DeviceState{UserID: goldenUser, DeviceID: "d_phone", Platform: "ios"}}},
		{"state_device_removed.json", "state.device." + goldenUser + ".d_phone", StateEvent{V: 1, Kind: StateDeviceRemoved, At: 1735689602000,
			Device: &DeviceState{UserID: goldenUser, DeviceID: "d_phone"}}},
		{"state_push_token_set.json", "state.push." + goldenUser + ".d_phone", StateEvent{V: 1, Kind: StatePushTokenSet, At: 1735689601500,
			PushToken: &PushTokenState{UserID: goldenUser, DeviceID: "d_phone", Platform: "ios", Token: "fcm:APA91bH-x_y"}}},
		{"state_push_token_removed.json", "state.push." + goldenUser + ".d_phone", StateEvent{V: 1, Kind: StatePushTokenRemoved, At: 1735689601900,
			PushToken: &PushTokenState{UserID: goldenUser, DeviceID: "d_phone"}}},
	} {
		t.Run(c.want.Kind, func(t *testing.T) {
			raw := golden(t, c.file)
			ev, err := DecodeStateEvent(c.subject, raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, c.want) {
				t.Fatalf("decoded\n got %+v\nwant %+v", ev, c.want)
			}
			if got := ev.Subject(); got != c.subject {
				t.Errorf("subject %q, want %q", got, c.subject)
			}
			out, err := ev.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, raw) {
				t.Fatalf("re-encoded differs from golden\n got %s\nwant %s", out, raw)
			}
		})
	}
}

func TestDecodeStateEventRejects(t *testing.T) {
	ok := string(golden(t, "state_profile_updated.json"))
	subj := "state.account.alice_b"
	for name, c := range map[string]struct{ subject, data string }{
		"not json":          {subj, "{"},
		"newer version":     {subj, strings.Replace(ok, `"v":1`, `"v":2`, 1)},
		"unknown kind":      {subj, strings.Replace(ok, "profile_updated", "password_changed", 1)},
		"wrong subject":     {"state.account.mallory", ok},
		"subject of a chat": {"chat.c1.member", ok},
		"no body":           {subj, `{"v":1,"kind":"profile_updated","at":1}`},
		"two bodies": {subj, `{"v":1,"kind":"profile_updated","at":1,"account":{"user_id":"u1","handle":"alice_b","display_name":"A"},` +
			`"device":{"user_id":"u1","device_id":"d1"}}`},
		"body of another kind":   {"state.device.u1.d1", `{"v":1,"kind":"account_deleted","at":1,"device":{"user_id":"u1","device_id":"d1"}}`},
		"hash in a profile":      {subj, `{"v":1,"kind":"profile_updated","at":1,"account":{"user_id":"u1","handle":"alice_b","display_name":"A","password_hash":"x"}}`},
		"created without hash":   {subj, `{"v":1,"kind":"account_created","at":1,"account":{"user_id":"u1","handle":"alice_b","display_name":"A"}}`},
		"upper-case handle":      {"state.account.Alice", `{"v":1,"kind":"account_deleted","at":1,"account":{"user_id":"u1","handle":"Alice"}}`},
		"wildcard user id":       {"state.device.*.d1", `{"v":1,"kind":"device_removed","at":1,"device":{"user_id":"*","device_id":"d1"}}`},
		"direct with one user":   {"state.direct.d1", `{"v":1,"kind":"direct_opened","at":1,"direct":{"conversation_id":"d1","user_ids":["u1"],"created_by":"u1"}}`},
		"direct with self":       {"state.direct.d1", `{"v":1,"kind":"direct_opened","at":1,"direct":{"conversation_id":"d1","user_ids":["u1","u1"],"created_by":"u1"}}`},
		"direct by a stranger":   {"state.direct.d1", `{"v":1,"kind":"direct_opened","at":1,"direct":{"conversation_id":"d1","user_ids":["u1","u2"],"created_by":"u3"}}`},
		"accepted by a stranger": {"state.direct.d1", `{"v":1,"kind":"direct_accepted","at":1,"direct":{"conversation_id":"d1","user_ids":["u1","u2"],"by":"u3"}}`},
		"accepted with opener":   {"state.direct.d1", `{"v":1,"kind":"direct_accepted","at":1,"direct":{"conversation_id":"d1","user_ids":["u1","u2"],"by":"u2","created_by":"u1"}}`},
		"opened with by":         {"state.direct.d1", `{"v":1,"kind":"direct_opened","at":1,"direct":{"conversation_id":"d1","user_ids":["u1","u2"],"created_by":"u1","by":"u2"}}`},
		"block of self":          {"state.block.u1.u1", `{"v":1,"kind":"user_blocked","at":1,"block":{"user_id":"u1","blocked_id":"u1"}}`},
		"block on another pair":  {"state.block.u1.u3", `{"v":1,"kind":"user_blocked","at":1,"block":{"user_id":"u1","blocked_id":"u2"}}`},
		"unknown visibility":     {"state.privacy.u1", `{"v":1,"kind":"presence_visibility_set","at":1,"privacy":{"user_id":"u1","presence":"friends"}}`},
		"token without token":    {"state.push.u1.d1", `{"v":1,"kind":"push_token_set","at":1,"push_token":{"user_id":"u1","device_id":"d1","platform":"ios"}}`},
		"removal with a token":   {"state.push.u1.d1", `{"v":1,"kind":"push_token_removed","at":1,"push_token":{"user_id":"u1","device_id":"d1","token":"t"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			if ev, err := DecodeStateEvent(c.subject, []byte(c.data)); err == nil {
				t.Fatalf("accepted %+v", ev)
			}
		})
	}
	if _, err := DecodeStateEvent(subj, []byte(strings.Replace(ok, `"v":1`, `"v":2`, 1))); !errors.Is(err, ErrVersion) {
		t.Errorf("newer version: %v, want ErrVersion", err)
	}
	if _, err := (StateEvent{Kind: StateProfileUpdated}).Encode(); err == nil {
		t.Error("an event without its body encoded")
	}
}

// FuzzDecodeStateEvent: no input panics, and what decodes re-encodes to an event that decodes
// to the same thing on the subject it names.
func FuzzDecodeStateEvent(f *testing.F) {
	for _, name := range []string{"state_account_created.json", "state_profile_updated.json", "state_account_deleted.json",
		"state_direct_opened.json", "state_device_registered.json", "state_device_removed.json",
		"state_push_token_set.json", "state_push_token_removed.json", "state_direct_requested.json", "state_direct_accepted.json",
		"state_direct_ignored.json", "state_user_blocked.json", "state_user_unblocked.json", "state_presence_visibility_set.json"} {
		raw := golden(f, name)
		var probe StateEvent
		_ = jsonUnmarshal(raw, &probe)
		f.Add(probe.Subject(), raw)
	}
	f.Add("state.account.x", []byte(`{"v":1,"kind":"account_deleted","account":{"user_id":"u","handle":"abc"}}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		ev, err := DecodeStateEvent(subject, data)
		if err != nil {
			return
		}
		if ev.Subject() != subject {
			t.Fatalf("decoded on %q an event that belongs on %q", subject, ev.Subject())
		}
		out, err := ev.Encode()
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		again, err := DecodeStateEvent(subject, out)
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, ev)
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
