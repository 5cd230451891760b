package api

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

func TestDirectConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice")
	bob, bt := e.user(t, "bob")
	want := DirectConversationID(alice.ID, bob.ID)
	if want != DirectConversationID(bob.ID, alice.ID) || !streams.ValidToken(want) || len(want) != 26 {
		t.Fatalf("direct id %q", want)
	}

	// Both sides open it at once, several times each: one conversation, both members.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token, other := at, bob.ID
			if i%2 == 1 {
				token, other = bt, alice.ID
			}
			status, raw := e.do(t, "POST", "/v1/conversations/direct", token, map[string]string{"user_id": other})
			if status != http.StatusOK && status != http.StatusCreated {
				t.Errorf("open direct: %d %s", status, raw)
				return
			}
			if !bytes.Contains(raw, []byte(`"id":"`+want+`"`)) {
				t.Errorf("open direct: %s, want id %s", raw, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if status == http.StatusCreated {
				created++
			}
		}()
	}
	wg.Wait()
	if created < 1 {
		t.Fatalf("no open reported creating the conversation")
	}
	var got conversationEnvelope
	e.call(t, "POST", "/v1/conversations/direct", bt, map[string]string{"user_id": alice.ID}, http.StatusOK, &got)
	members := []string{alice.ID, bob.ID}
	slices.Sort(members)
	if got.Conversation.ID != want || got.Conversation.Kind != "direct" || !slices.Equal(got.Conversation.Members, members) {
		t.Fatalf("direct conversation %+v", got.Conversation)
	}
	stored, err := e.store.Members(testContext(t), want)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Fatalf("stored members %+v", stored)
	}
	for _, m := range stored {
		if m.JoinedSeq != 0 || m.LeftSeq != 0 || m.Role != "member" {
			t.Fatalf("stored member %+v", m)
		}
	}
	for _, token := range []string{at, bt} {
		var list struct{ Conversations []summaryJSON }
		e.call(t, "GET", "/v1/conversations", token, nil, http.StatusOK, &list)
		if len(list.Conversations) != 1 || list.Conversations[0].ID != want || list.Conversations[0].LastMessage != nil {
			t.Fatalf("list %+v", list)
		}
	}

	e.wantError(t, "POST", "/v1/conversations/direct", at, map[string]string{"user_id": alice.ID}, http.StatusBadRequest, CodeSelfConversation)
	e.wantError(t, "POST", "/v1/conversations/direct", at, map[string]string{"user_id": "01NOSUCHUSER0000000000000"}, http.StatusNotFound, CodeUserNotFound)
	e.wantError(t, "POST", "/v1/conversations/direct", at, map[string]string{"user_id": "chat.>"}, http.StatusNotFound, CodeUserNotFound)
	e.wantError(t, "POST", "/v1/conversations/direct", at, map[string]string{}, http.StatusBadRequest, CodeInvalidRequest)
	e.wantError(t, "POST", "/v1/conversations/direct", at, "{", http.StatusBadRequest, protocol.CodeInvalidJSON)
	e.wantError(t, "POST", "/v1/conversations/direct", "", map[string]string{"user_id": bob.ID}, http.StatusUnauthorized, CodeUnauthorized)
}

func TestConversationList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice")
	bob, _ := e.user(t, "bob")
	carol, _ := e.user(t, "carol")

	e.conversation(t, "g1", store.Member{UserID: alice.ID, Role: "owner"}, store.Member{UserID: bob.ID})
	e.conversation(t, "g2", store.Member{UserID: alice.ID}, store.Member{UserID: carol.ID, LeftSeq: 3})
	e.conversation(t, "g3", store.Member{UserID: alice.ID, JoinedSeq: 30}) // joined after the last message
	e.conversation(t, "g4", store.Member{UserID: alice.ID, LeftSeq: 5})    // alice was removed
	e.conversation(t, "g5", store.Member{UserID: bob.ID})                  // alice never was in it
	e.insert(t, "g1", 10, bob.ID)
	e.insert(t, "g2", 20, alice.ID)
	e.insert(t, "g3", 7, alice.ID)
	e.insert(t, "g4", 40, alice.ID)
	e.insert(t, "g5", 50, bob.ID)
	// g6's only message is in the stream: the persister lags.
	e.conversation(t, "g6", store.Member{UserID: alice.ID})
	seq6, _ := e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "g6", SenderID: bob.ID, Text: "fresh"})
	if seq6 >= 10 {
		t.Fatalf("stream seq %d would not sort below the stored seqs", seq6)
	}

	var list struct{ Conversations []summaryJSON }
	e.call(t, "GET", "/v1/conversations", at, nil, http.StatusOK, &list)
	var ids []string
	for _, c := range list.Conversations {
		ids = append(ids, c.ID)
	}
	if want := []string{"g2", "g1", "g6", "g3"}; !slices.Equal(ids, want) {
		t.Fatalf("conversations %v, want %v", ids, want)
	}
	g2, g1, g6, g3 := list.Conversations[0], list.Conversations[1], list.Conversations[2], list.Conversations[3]
	if g2.LastMessage == nil || g2.LastMessage.Seq != 20 || g2.LastMessage.Text != "m20" || g2.LastMessage.Type != protocol.TypeMessage {
		t.Fatalf("g2 last message %+v", g2.LastMessage)
	}
	if !slices.Equal(g2.Members, []string{alice.ID}) || g2.Kind != "group" || g2.Name != "group g2" {
		t.Fatalf("g2 %+v", g2)
	}
	if want := sorted(alice.ID, bob.ID); !slices.Equal(g1.Members, want) || g1.LastMessage.Seq != 10 {
		t.Fatalf("g1 %+v", g1)
	}
	if g6.LastMessage == nil || g6.LastMessage.Seq != seq6 || g6.LastMessage.Text != "fresh" {
		t.Fatalf("g6 last message %+v", g6.LastMessage)
	}
	if g3.LastMessage != nil {
		t.Fatalf("g3 shows a message from before alice joined: %+v", g3.LastMessage)
	}

	_, ct := e.user(t, "dave")
	status, raw := e.do(t, "GET", "/v1/conversations", ct, nil)
	if status != http.StatusOK || string(bytes.TrimSpace(raw)) != `{"conversations":[]}` {
		t.Fatalf("empty list: %d %s", status, raw)
	}
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// TestMembershipMatrix checks every endpoint that names a conversation for a current member, a
// member who joined late, a removed member and a non-member, and a conversation that does not
// exist: non-members and missing conversations get byte-identical answers.
func TestMembershipMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice") // member from the start
	carol, ct := e.user(t, "carol") // joined at seq 50
	dave, dt := e.user(t, "dave")   // removed at seq 100
	_, et := e.user(t, "eve")       // never a member
	rita, rt := e.user(t, "rita")   // member 20-40, re-joined at 90
	ivan, it := e.user(t, "ivan")   // invited at 60, never a member
	e.conversation(t, "grp",
		store.Member{UserID: alice.ID, Role: "owner"},
		store.Member{UserID: carol.ID, JoinedSeq: 50},
		store.Member{UserID: dave.ID, LeftSeq: 100},
		store.Member{UserID: rita.ID, JoinedSeq: 90, Earlier: []store.Interval{{JoinedSeq: 20, LeftSeq: 40}}},
		store.Member{UserID: ivan.ID, JoinedSeq: 60, LeftSeq: 60, InvitedSeq: 60, InvitedBy: alice.ID},
	)
	ids := map[uint64]string{}
	for seq := uint64(7); seq <= 140; seq += 7 {
		ids[seq] = e.insert(t, "grp", seq, alice.ID)
	}

	// Every conversation endpoint and query shape, for the identical-answer checks.
	paths := func(conv string) []string {
		base := "/v1/conversations/" + conv
		return []string{
			base, base + "/messages", base + "/messages?limit=5", base + "/messages?before=50",
			base + "/messages?after=50", base + "/messages?around=70", base + "/messages?around_id=" + ids[70],
			base + "/messages?before=bogus", base + "/messages?around_id=01NOSUCHMESSAGE0000000000",
		}
	}
	notMember := func(t *testing.T, token, path string) []byte {
		t.Helper()
		status, raw := e.do(t, "GET", path, token, nil)
		if status != http.StatusNotFound || !bytes.Contains(raw, []byte(`"code":"not_member"`)) {
			t.Fatalf("GET %s: %d %s, want 404 not_member", path, status, raw)
		}
		return raw
	}
	var reference []byte
	for _, conv := range []string{"grp", "nosuchconv", "bad.id", "d0000000000000000000000000"} {
		for _, path := range paths(conv) {
			raw := notMember(t, et, path)
			if reference == nil {
				reference = raw
			}
			if !bytes.Equal(raw, reference) {
				t.Fatalf("GET %s as a non-member: %s, differs from %s", path, raw, reference)
			}
			if conv != "grp" { // a member of grp gets the same for other conversations
				if raw := notMember(t, at, path); !bytes.Equal(raw, reference) {
					t.Fatalf("GET %s as alice: %s", path, raw)
				}
			}
		}
	}
	// A removed member no longer sees the conversation itself, only its history up to the
	// removal; an invitee sees neither.
	for _, token := range []string{dt, it} {
		if raw := notMember(t, token, "/v1/conversations/grp"); !bytes.Equal(raw, reference) {
			t.Fatalf("removed member or invitee: %s", raw)
		}
	}

	// Current members see the current members.
	for _, token := range []string{at, ct} {
		var got struct {
			Conversation conversationJSON
			Members      []memberJSON
		}
		e.call(t, "GET", "/v1/conversations/grp", token, nil, http.StatusOK, &got)
		want := []memberJSON{{alice.ID, "owner", 0}, {carol.ID, "member", 50}, {rita.ID, "member", 90}}
		slices.SortFunc(want, func(a, b memberJSON) int { return strings.Compare(a.UserID, b.UserID) })
		if got.Conversation.ID != "grp" || got.Conversation.Kind != "group" || !slices.Equal(got.Members, want) {
			t.Fatalf("conversation %+v", got)
		}
	}

	seqs := func(token, query string) ([]uint64, historyJSON) {
		t.Helper()
		var h historyJSON
		e.call(t, "GET", "/v1/conversations/grp/messages"+query, token, nil, http.StatusOK, &h)
		var out []uint64
		for _, ev := range h.Messages {
			out = append(out, ev.Seq)
		}
		return out, h
	}
	all := func(from, to uint64) []uint64 { // multiples of 7 in [from, to], newest first
		var out []uint64
		for s := to - to%7; s >= from && s > 0; s -= 7 {
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		who, token, query string
		want              []uint64
		older, newer      uint64
	}{
		{"alice", at, "", all(7, 140), 0, 0},
		{"carol", ct, "", all(51, 140), 0, 0},
		{"carol", ct, "?limit=3&after=7", []uint64{70, 63, 56}, 0, 70},
		{"carol", ct, "?before=63", []uint64{56}, 0, 56},
		{"carol", ct, "?before=56", nil, 0, 0},
		{"carol", ct, "?around=14&limit=4", []uint64{63, 56}, 0, 63},
		{"dave", dt, "", all(7, 100), 0, 0},
		{"dave", dt, "?limit=2", []uint64{98, 91}, 91, 0},
		{"dave", dt, "?after=90", []uint64{98, 91}, 91, 0},
		{"dave", dt, "?after=98", nil, 0, 0},
		{"dave", dt, "?before=200&limit=1", []uint64{98}, 98, 0},
		{"dave", dt, "?around=140&limit=4", []uint64{98, 91}, 91, 0},
		{"dave", dt, "?around_id=" + ids[91] + "&limit=3", []uint64{98, 91, 84}, 84, 0},
		// Re-joined: both intervals, never the gap between them, pages full across it.
		{"rita", rt, "", append(all(91, 140), 35, 28, 21), 0, 0},
		{"rita", rt, "?limit=3&before=98", []uint64{91, 35, 28}, 28, 91},
		{"rita", rt, "?limit=3&after=30", []uint64{98, 91, 35}, 35, 98},
		{"rita", rt, "?around=60&limit=4", []uint64{98, 91, 35, 28}, 28, 98},
		{"rita", rt, "?around_id=" + ids[28] + "&limit=2", []uint64{35, 28}, 28, 35},
		{"ivan", it, "", nil, 0, 0},
	} {
		got, h := seqs(tc.token, tc.query)
		if !slices.Equal(got, tc.want) || h.Older != tc.older || h.Newer != tc.newer {
			t.Errorf("%s %s: seqs %v older %d newer %d; want %v older %d newer %d",
				tc.who, tc.query, got, h.Older, h.Newer, tc.want, tc.older, tc.newer)
		}
	}
	// A message the member may not see is answered like one that does not exist.
	for _, tc := range []struct{ token, id string }{
		{dt, ids[105]}, {ct, ids[49]}, {ct, "01NOSUCHMESSAGE0000000000"}, {rt, ids[49]}, {rt, ids[84]}, {it, ids[63]},
	} {
		e.wantError(t, "GET", "/v1/conversations/grp/messages?around_id="+tc.id, tc.token, nil, http.StatusNotFound, CodeMessageNotFound)
	}
	_, hidden := e.do(t, "GET", "/v1/conversations/grp/messages?around_id="+ids[105], dt, nil)
	_, missing := e.do(t, "GET", "/v1/conversations/grp/messages?around_id=01NOSUCHMESSAGE0000000000", dt, nil)
	if !bytes.Equal(hidden, missing) {
		t.Fatalf("hidden message %s, missing message %s", hidden, missing)
	}

	// The list shows current memberships only.
	for token, want := range map[string]int{at: 1, ct: 1, dt: 0, et: 0, rt: 1, it: 0} {
		var list struct{ Conversations []summaryJSON }
		e.call(t, "GET", "/v1/conversations", token, nil, http.StatusOK, &list)
		if len(list.Conversations) != want {
			t.Fatalf("list: %d conversations, want %d", len(list.Conversations), want)
		}
	}
}
