package asyncapi_test

import (
	"os"
	"path/filepath"
	"testing"
)

// goldenSubjects names a subject for each golden payload in streams/testdata: the file must
// match the schema of that subject's channel. A golden file not listed here fails the test.
var goldenSubjects = map[string]string{
	"chat_msg.json":                      "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.msg",
	"chat_member.json":                   "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.member",
	"chat_read.json":                     "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.read",
	"push_request.json":                  "push.u_bob",
	"push_dead.json":                     "push_dead.u_bob",
	"delivery.json":                      "gw.gw-1.deliver",
	"delivery_frame.json":                "gw.gw-1.deliver",
	"delivery_resync.json":               "gw.gw-1.deliver",
	"route.json":                         "$KV.routes.u_alice.d_phone",
	"gateway_info.json":                  "$KV.gateways.gw-1",
	"push_ledger_entry.json":             "$KV.push_ledger.u_bob.01J9ZK4A0B2C4D6E8F0G2H4J6K.d_phone",
	"push_setting.json":                  "$KV.push_settings.u_bob.01J9ZK3V8Q2W5X7Y9A1B3C5D7E",
	"state_account_created.json":         "state.account.alice_b",
	"state_profile_updated.json":         "state.account.alice_b",
	"state_account_deleted.json":         "state.account.alice_b",
	"state_direct_opened.json":           "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g",
	"state_device_registered.json":       "state.device.01J9ZK2A4C6E8G0J2L4N6Q8S0U.d_phone",
	"state_device_removed.json":          "state.device.01J9ZK2A4C6E8G0J2L4N6Q8S0U.d_phone",
	"state_push_token_set.json":          "state.push.01J9ZK2A4C6E8G0J2L4N6Q8S0U.d_phone",
	"state_push_token_removed.json":      "state.push.01J9ZK2A4C6E8G0J2L4N6Q8S0U.d_phone",
	"state_direct_requested.json":        "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g",
	"state_direct_accepted.json":         "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g",
	"state_direct_ignored.json":          "state.direct.dk3v8q2w5x7y9a1b3c5d7e9f1g",
	"state_user_blocked.json":            "state.block.01J9ZK2A4C6E8G0J2L4N6Q8S0U.01J9ZK3B5D7F9H1K3M5P7R9T1V",
	"state_user_unblocked.json":          "state.block.01J9ZK2A4C6E8G0J2L4N6Q8S0U.01J9ZK3B5D7F9H1K3M5P7R9T1V",
	"state_presence_visibility_set.json": "state.privacy.01J9ZK2A4C6E8G0J2L4N6Q8S0U",
	"chat_edit.json":                     "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.edit",
	"chat_delete.json":                   "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.delete",
	"chat_hide.json":                     "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.hide",
	"chat_member_left_owner.json":        "chat.01J9ZK3V8Q2W5X7Y9A1B3C5D7E.member",
}

func TestGoldenPayloadsMatchTheSpec(t *testing.T) {
	s := loadSpec(t)
	files, err := filepath.Glob("../../streams/testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		subject, ok := goldenSubjects[name]
		if !ok {
			t.Errorf("streams/testdata/%s: no subject known for it; add it to goldenSubjects", name)
			continue
		}
		ch := s.channelOf(subject)
		if ch == nil {
			t.Errorf("%s: no channel of docs/asyncapi.yaml matches %s", name, subject)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(t, ch.payload, "streams/testdata/"+name+" on "+subject, data)
	}
}
