package projection

import (
	"errors"
	"reflect"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

// event encodes ev and returns its subject and payload, as they are on STATE.
func event(t *testing.T, ev streams.StateEvent) (string, []byte) {
	t.Helper()
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return ev.Subject(), data
}

type applied struct {
	user    store.User
	userErr error
	devices []store.Device
	tokens  []store.PushToken
}

func state(t *testing.T, st store.Store, userID string) applied {
	t.Helper()
	var a applied
	a.user, a.userErr = st.UserByID(t.Context(), userID)
	var err error
	if a.devices, err = st.Devices(t.Context(), userID); err != nil {
		t.Fatal(err)
	}
	if a.tokens, err = st.PushTokens(t.Context(), userID); err != nil {
		t.Fatal(err)
	}
	return a
}

// An account's events in order, applied once, then all again, then the sign-up alone again:
// the deleted account stays deleted, with no device or push token, and its handle stays taken.
func TestApplyIsIdempotentAndDeletionSticks(t *testing.T) {
	st := pebbletest.Open(t)
	acct := &streams.AccountState{UserID: "u1", Handle: "alice", DisplayName: "Alice", PasswordHash: "$2a$04$hash"}
	events := []streams.StateEvent{
		{Kind: streams.StateAccountCreated, At: 1000, Account: acct},
		{Kind: streams.StateProfileUpdated, At: 2000, Account: &streams.AccountState{UserID: "u1", Handle: "alice", DisplayName: "Alice ✨"}},
		{Kind: streams.StateDeviceRegistered, At: 3000, Device: &streams.DeviceState{UserID: "u1", DeviceID: "phone", Platform: "ios"}},
		{Kind: streams.StatePushTokenSet, At: 4000, PushToken: &streams.PushTokenState{UserID: "u1", DeviceID: "phone", Platform: "ios", Token: "t1"}},
	}
	ctx := t.Context()
	for _, ev := range events {
		subject, data := event(t, ev)
		if err := Apply(ctx, st, subject, 1, data); err != nil {
			t.Fatal(err)
		}
	}
	before := state(t, st, "u1")
	if before.user.DisplayName != "Alice ✨" || len(before.devices) != 1 || len(before.tokens) != 1 {
		t.Fatalf("after the events: %+v", before)
	}
	for _, ev := range events {
		subject, data := event(t, ev)
		if err := Apply(ctx, st, subject, 1, data); err != nil {
			t.Fatal(err)
		}
	}
	if again := state(t, st, "u1"); !reflect.DeepEqual(again, before) {
		t.Fatalf("applying again changed the store:\n got %+v\nwant %+v", again, before)
	}

	deleted := streams.StateEvent{Kind: streams.StateAccountDeleted, At: 5000, Account: &streams.AccountState{UserID: "u1", Handle: "alice"}}
	for _, ev := range append([]streams.StateEvent{deleted}, append(events, deleted)...) {
		subject, data := event(t, ev)
		if err := Apply(ctx, st, subject, 1, data); err != nil {
			t.Fatal(err)
		}
		after := state(t, st, "u1")
		if ev.Kind == streams.StateAccountDeleted || after.userErr != nil {
			if !errors.Is(after.userErr, store.ErrNotFound) || len(after.devices) != 0 || len(after.tokens) != 0 {
				t.Fatalf("after %s: the deleted account is back: %+v", ev.Kind, after)
			}
		}
	}
	if err := st.CreateUser(ctx, store.User{ID: "u2", Handle: "alice"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a deleted account's handle given to another: %v", err)
	}
}

// What can never be applied is ErrInvalid; subjects of other streams change nothing.
func TestApplyRefusesInvalidEvents(t *testing.T) {
	st := pebbletest.Open(t)
	_, data := event(t, streams.StateEvent{Kind: streams.StateAccountDeleted, At: 1, Account: &streams.AccountState{UserID: "u1", Handle: "alice"}})
	for name, c := range map[string]struct {
		subject string
		data    []byte
	}{
		"wrong subject":    {"state.account.bob", data},
		"not json":         {"state.account.alice", []byte("{")},
		"newer version":    {"state.account.alice", []byte(`{"v":2,"kind":"account_deleted","at":1,"account":{"user_id":"u1","handle":"alice"}}`)},
		"chat not json":    {"chat.c1.msg", []byte("{")},
		"receipt not json": {"chat.c1.read", []byte("[]")},
	} {
		if err := Apply(t.Context(), st, c.subject, 1, c.data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := Apply(t.Context(), st, "presence.u1.d1", 1, []byte("{")); err != nil {
		t.Errorf("a subject of another stream: %v", err)
	}
}
