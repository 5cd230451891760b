package app_test

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/projection"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/api"
	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
	"github.com/natter-chat/natter/streams"
)

// The store is a projection of the streams: a natter is used (accounts, a profile change,
// direct and group conversations with joins and leaves, messages, receipts, devices, push
// tokens, a mute, an account deletion), then a second natter with a FRESH empty store replays
// STATE and CHAT from sequence 1 through pkg/projection. Its store must equal the first one in
// every record, every account must log in to it with its password, and a second replay must
// change nothing.
func TestStoreRebuildsFromTheStreams(t *testing.T) {
	sys := apptest.Start(t)
	alice, bob, carol, dave := sys.SignUp("alice"), sys.SignUp("bob"), sys.SignUp("carol"), sys.SignUp("dave")
	sys.Do("PATCH", "/v1/me", alice.Token, map[string]string{"display_name": "Alice ✨"}, http.StatusOK, nil)

	direct := sys.Direct(alice, bob)
	sys.Direct(carol, dave)
	var g groupAnswer
	sys.Do("POST", "/v1/groups", alice.Token, map[string]any{"name": "weekend", "member_ids": []string{bob.ID, carol.ID}}, http.StatusCreated, &g)
	var first struct {
		Messages []struct{ Seq uint64 } `json:"messages"`
	}
	sys.Do("GET", "/v1/conversations/"+g.Conversation.ID+"/messages", alice.Token, nil, http.StatusOK, &first)
	if len(first.Messages) != 2 || first.Messages[0].Seq != g.Seq {
		t.Fatalf("a new group's history %+v, want [invited at %d, created]", first.Messages, g.Seq)
	}
	created, bobJoined, carolJoined := first.Messages[1].Seq, accept(sys, g.Conversation.ID, bob), accept(sys, g.Conversation.ID, carol)
	sys.Do("PATCH", "/v1/conversations/"+g.Conversation.ID, alice.Token, map[string]string{"name": "long weekend"}, http.StatusOK, nil)
	var added, left groupAnswer
	sys.Do("PUT", "/v1/conversations/"+g.Conversation.ID+"/members/"+bob.ID+"/role", alice.Token, map[string]string{"role": "admin"}, http.StatusOK, nil)
	sys.Do("POST", "/v1/conversations/"+g.Conversation.ID+"/members", bob.Token, map[string]any{"user_ids": []string{dave.ID}}, http.StatusOK, &added)
	added.Seq = accept(sys, g.Conversation.ID, dave)

	aliceWS, bobWS, daveWS := live(sys, alice, "phone"), live(sys, bob, "laptop"), live(sys, dave, "tablet")
	texts := []string{"hi bob", "héllo 👋 \"quoted\" <b>&amp;</b>", "\u2028 line separator and \x7f"}
	var last uint64
	for i, text := range texts {
		last = sendText(aliceWS, direct, fmt.Sprintf("d%d", i), text).Seq
	}
	sendText(bobWS, g.Conversation.ID, "g1", "group hello")
	sys.Do("POST", "/v1/conversations/"+g.Conversation.ID+"/leave", carol.Token, nil, http.StatusOK, &left)
	last = max(last, sendText(aliceWS, g.Conversation.ID, "g2", "after carol left").Seq)
	bobWS.Send(protocol.ClientFrame{Type: protocol.TypeRead, ConversationID: direct, UpTo: 2})
	aliceWS.Send(protocol.ClientFrame{Type: protocol.TypeDelivered, ConversationID: g.Conversation.ID, UpTo: last})

	sys.Do("PUT", "/v1/devices/phone/push-token", alice.Token, map[string]string{"platform": "ios", "token": "fcm-alice-phone"}, http.StatusOK, nil)
	sys.Do("PUT", "/v1/devices/laptop/push-token", bob.Token, map[string]string{"platform": "web", "token": "fcm-bob-old"}, http.StatusOK, nil)
	sys.Do("PUT", "/v1/devices/laptop/push-token", bob.Token, map[string]string{"platform": "web", "token": "fcm-bob-new"}, http.StatusOK, nil)
	sys.Do("PUT", "/v1/devices/tablet/push-token", dave.Token, map[string]string{"platform": "android", "token": "fcm-dave"}, http.StatusOK, nil)
	sys.Do("PUT", "/v1/conversations/"+g.Conversation.ID+"/mute", bob.Token, map[string]bool{"muted": true}, http.StatusOK, nil)
	sys.Do("PUT", "/v1/conversations/"+g.Conversation.ID+"/mute", dave.Token, map[string]bool{"muted": true}, http.StatusOK, nil)
	// Bob logs out of a second device; Dave deletes his account.
	live(sys, bob, "old-phone").Conn.CloseNow()
	waitFor(t, func() bool { return len(devices(t, sys.Run.Store, bob.ID)) == 2 }, "bob's old phone registered")
	sys.Do("POST", "/v1/logout", bob.Token, map[string]string{"device_id": "old-phone"}, http.StatusNoContent, nil)
	sys.Do("DELETE", "/v1/me", dave.Token, map[string]string{"password": "password-dave"}, http.StatusNoContent, nil)
	if code := daveWS.CloseStatus(wait); code != 4401 {
		t.Errorf("dave's socket closed with %d, want 4401", code)
	}

	ctx := t.Context()
	waitFor(t, func() bool {
		chat, _ := sys.Run.Store.Watermark(ctx, direct, bob.ID)
		w, _ := sys.Run.Store.Watermark(ctx, g.Conversation.ID, alice.ID)
		return chat.Read == 2 && w.Delivered == last
	}, "receipts stored")
	sys.WaitPersisted(lastSeq(t, sys.Run.NC, streams.ChatStream))

	users := []apptest.User{alice, bob, carol, dave}
	convs := []string{direct, apiDirectID(carol, dave), g.Conversation.ID}
	want := snapshot(t, sys.Run.Store, users, convs)
	if want.users[dave.ID] != "gone" || len(want.devices[dave.ID]) != 0 || len(want.tokens[dave.ID]) != 0 {
		t.Fatalf("dave's deletion left %q, devices %v, tokens %v", want.users[dave.ID], want.devices[dave.ID], want.tokens[dave.ID])
	}
	// The group's members as the API's answers say: joined before the event that created the
	// group or accepted its invitation, left at the one that removed them.
	var seqs []string
	for _, m := range want.members[g.Conversation.ID] {
		seqs = append(seqs, fmt.Sprintf("%s:%d-%d", m.UserID, m.JoinedSeq, m.LeftSeq))
	}
	slices.Sort(seqs)
	wantSeqs := []string{fmt.Sprintf("%s:%d-0", alice.ID, created-1), fmt.Sprintf("%s:%d-0", bob.ID, bobJoined-1),
		fmt.Sprintf("%s:%d-%d", carol.ID, carolJoined-1, left.Seq), fmt.Sprintf("%s:%d-0", dave.ID, added.Seq-1)}
	slices.Sort(wantSeqs)
	if !slices.Equal(seqs, wantSeqs) {
		t.Errorf("group members %v, want %v", seqs, wantSeqs)
	}
	if c := want.convs[g.Conversation.ID]; c.Name != "long weekend" || c.Kind != store.Group || c.CreatedBy != alice.ID {
		t.Errorf("group %+v", c)
	}
	if n := len(want.messages[direct]); n != len(texts) || want.messages[direct][0].Text != texts[len(texts)-1] {
		t.Errorf("direct conversation holds %d messages, want %d", n, len(texts))
	}
	if muted(t, sys.Run.NC, dave.ID, g.Conversation.ID) || !muted(t, sys.Run.NC, bob.ID, g.Conversation.ID) {
		t.Error("dave's mute must be gone with his account, bob's kept")
	}

	// A second natter (API only) on the same streams, with an empty store. Its start-up check
	// would refuse an empty store while the streams hold events; with Repair it rebuilds it at
	// start, and the replays below must change nothing.
	fresh := apptest.Start(t, func(c *app.Config) {
		c.Targets = []string{app.TargetAPI}
		c.NATSURL = sys.NATSURL
		c.Recovery.Repair = true
	})
	for pass := 1; pass <= 2; pass++ {
		replay(t, sys.Run.NC, fresh.Run.Store)
		got := snapshot(t, fresh.Run.Store, users, convs)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("replay %d: rebuilt store differs\n got %+v\nwant %+v", pass, got, want)
		}
	}
	for _, u := range []apptest.User{alice, bob, carol} {
		fresh.Do("POST", "/v1/login", "", map[string]string{"handle": u.Handle, "password": "password-" + u.Handle}, http.StatusOK, nil)
	}
	fresh.Do("POST", "/v1/login", "", map[string]string{"handle": "dave", "password": "password-dave"}, http.StatusUnauthorized, nil)
	fresh.Do("POST", "/v1/signup", "", map[string]string{"handle": "dave", "password": "password-x"}, http.StatusConflict, nil)
}

// rebuilt is what a test compares of two stores.
type rebuilt struct {
	users    map[string]string // id -> "handle|display name|hash" or "gone"
	convs    map[string]store.Conversation
	members  map[string][]store.Member
	messages map[string][]store.Message
	marks    map[string][]store.Watermark
	devices  map[string][]string // user -> "device|platform|created"
	tokens   map[string][]store.PushToken
}

func snapshot(t *testing.T, st store.Store, users []apptest.User, convs []string) rebuilt {
	t.Helper()
	ctx := t.Context()
	r := rebuilt{users: map[string]string{}, convs: map[string]store.Conversation{}, members: map[string][]store.Member{},
		messages: map[string][]store.Message{}, marks: map[string][]store.Watermark{}, devices: map[string][]string{},
		tokens: map[string][]store.PushToken{}}
	for _, u := range users {
		got, err := st.UserByID(ctx, u.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.users[u.ID] = "gone"
		case err != nil:
			t.Fatal(err)
		default:
			r.users[u.ID] = got.Handle + "|" + got.DisplayName + "|" + string(got.PasswordHash) + "|" + got.CreatedAt.String()
		}
		ms, err := st.MembershipsOf(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if !slices.Contains(convs, m.ConversationID) {
				t.Errorf("%s is a member of unexpected %s", u.Handle, m.ConversationID)
			}
		}
		for _, d := range devices(t, st, u.ID) {
			r.devices[u.ID] = append(r.devices[u.ID], d.DeviceID+"|"+d.Platform+"|"+d.CreatedAt.String())
		}
		if r.tokens[u.ID], err = st.PushTokens(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range convs {
		c, err := st.Conversation(ctx, id)
		if err != nil {
			t.Fatalf("conversation %s: %v", id, err)
		}
		r.convs[id] = c
		if r.members[id], err = st.Members(ctx, id); err != nil {
			t.Fatal(err)
		}
		if r.messages[id], err = st.Messages(ctx, id, store.Page{Limit: store.MaxPageLimit}); err != nil {
			t.Fatal(err)
		}
		if r.marks[id], err = st.Watermarks(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func devices(t *testing.T, st store.Store, userID string) []store.Device {
	t.Helper()
	ds, err := st.Devices(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// replay applies every message of STATE, then of CHAT, from sequence 1, to st.
func replay(t *testing.T, nc *nats.Conn, st store.Store) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{streams.StateStream, streams.ChatStream} {
		stream, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); seq <= lastSeq(t, nc, name); seq++ {
			raw, err := stream.GetMsg(t.Context(), seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := projection.Apply(t.Context(), st, raw.Subject, raw.Sequence, raw.Data); err != nil {
				t.Fatalf("%s seq %d: %v", name, seq, err)
			}
		}
	}
}

func lastSeq(t *testing.T, nc *nats.Conn, name string) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func muted(t *testing.T, nc *nats.Conn, userID, conv string) bool {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), streams.PushSettingsBucket)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(t.Context(), streams.PushSettingKey(userID, conv))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func apiDirectID(a, b apptest.User) string { return api.DirectConversationID(a.ID, b.ID) }
