package api

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice")
	e.conversation(t, "stored", store.Member{UserID: alice.ID})
	ids := map[uint64]string{}
	var all []uint64 // newest first
	for seq := uint64(210); seq >= 7; seq -= 7 {
		all = append(all, seq)
	}
	for _, seq := range all {
		ids[seq] = e.insert(t, "stored", seq, alice.ID)
	}
	page := func(query string) ([]uint64, historyJSON) {
		t.Helper()
		var h historyJSON
		e.call(t, "GET", "/v1/conversations/stored/messages"+query, at, nil, http.StatusOK, &h)
		var seqs []uint64
		for _, ev := range h.Messages {
			if ev.Type != protocol.TypeMessage || ev.ConversationID != "stored" || ev.MessageID != ids[ev.Seq] ||
				ev.Text != fmt.Sprintf("m%d", ev.Seq) || ev.SenderID != alice.ID || ev.SentAt == 0 {
				t.Fatalf("event %+v", ev)
			}
			seqs = append(seqs, ev.Seq)
		}
		return seqs, h
	}

	for _, tc := range []struct {
		query        string
		want         []uint64
		older, newer uint64
	}{
		{"", all, 0, 0},
		{"?limit=3", []uint64{210, 203, 196}, 196, 0},
		{"?before=196&limit=3", []uint64{189, 182, 175}, 175, 189},
		{"?before=195&limit=3", []uint64{189, 182, 175}, 175, 189},
		{"?before=14", []uint64{7}, 0, 7},
		{"?before=7", nil, 0, 0},
		{"?after=7&limit=3", []uint64{28, 21, 14}, 14, 28},
		{"?after=1&limit=2", []uint64{14, 7}, 0, 14},
		{"?after=203", []uint64{210}, 203 + 7, 0},
		{"?after=210", nil, 0, 0},
		{"?around=105&limit=5", []uint64{119, 112, 105, 98, 91}, 91, 119},
		{"?around=104&limit=5", []uint64{112, 105, 98, 91, 84}, 84, 112},
		{"?around=105&limit=1", []uint64{105}, 105, 105},
		{"?around=1000&limit=4", []uint64{210, 203}, 203, 0},
		{"?around=1&limit=4", []uint64{14, 7}, 0, 14},
		{"?around_id=" + ids[105] + "&limit=5", []uint64{119, 112, 105, 98, 91}, 91, 119},
		{"?limit=200", all, 0, 0},
	} {
		got, h := page(tc.query)
		if !slices.Equal(got, tc.want) || h.Older != tc.older || h.Newer != tc.newer {
			t.Errorf("%s: seqs %v older %d newer %d; want %v older %d newer %d",
				tc.query, got, h.Older, h.Newer, tc.want, tc.older, tc.newer)
		}
	}

	// Following the hints both ways visits every message once.
	var walked []uint64
	for q := "?limit=4"; ; {
		got, h := page(q)
		walked = append(walked, got...)
		if h.Older == 0 {
			break
		}
		q = fmt.Sprintf("?limit=4&before=%d", h.Older)
	}
	if !slices.Equal(walked, all) {
		t.Fatalf("walking older: %v", walked)
	}
	walked = nil
	for q := "?limit=4&after=1"; ; {
		got, h := page(q)
		walked = append(got, walked...)
		if h.Newer == 0 {
			break
		}
		q = fmt.Sprintf("?limit=4&after=%d", h.Newer)
	}
	if !slices.Equal(walked, all) {
		t.Fatalf("walking newer: %v", walked)
	}

	for _, q := range []string{
		"?before=0", "?before=-1", "?before=x", "?before=", "?after=0", "?around=0", "?around=1e3",
		"?before=99999999999999999999", "?before=5&after=3", "?around=5&around_id=" + ids[7],
		"?around_id=", "?around_id=a.b", "?limit=0", "?limit=201", "?limit=-5", "?limit=ten",
	} {
		e.wantError(t, "GET", "/v1/conversations/stored/messages"+q, at, nil, http.StatusBadRequest, CodeInvalidRequest)
	}
	e.wantError(t, "GET", "/v1/conversations/stored/messages?around_id=01NOSUCHMESSAGE0000000000", at, nil, http.StatusNotFound, CodeMessageNotFound)
	e.wantError(t, "GET", "/v1/conversations/stored/messages", "", nil, http.StatusUnauthorized, CodeUnauthorized)
}

// TestHistoryWhilePersisterLags reads events that are only in the CHAT stream (no persister runs)
// and a conversation whose older events are stored and newer ones are not.
func TestHistoryWhilePersisterLags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice")
	bob, bt := e.user(t, "bob")
	e.conversation(t, "live", store.Member{UserID: alice.ID}, store.Member{UserID: bob.ID})
	e.conversation(t, "other", store.Member{UserID: alice.ID})

	// Interleave with another conversation and with receipts, so live's seqs are sparse and
	// non-timeline events sit between them.
	var want []uint64 // newest first
	ids := map[uint64]string{}
	for i := range 12 {
		e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "other", SenderID: alice.ID, Text: "noise"})
		ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "live", SenderID: bob.ID, Text: fmt.Sprintf("live %d", i)}
		if i == 0 {
			ev = streams.ChatEvent{Kind: streams.KindMember, ConversationID: "live", SenderID: alice.ID,
				Member: &streams.MemberChange{Action: streams.MemberCreated, UserIDs: []string{alice.ID, bob.ID}}}
		}
		seq, id := e.publish(t, ev)
		ids[seq] = id
		want = append([]uint64{seq}, want...)
		e.publish(t, streams.ChatEvent{Kind: streams.KindRead, ConversationID: "live", SenderID: alice.ID})
	}
	page := func(token, query string) ([]uint64, historyJSON) {
		t.Helper()
		var h historyJSON
		e.call(t, "GET", "/v1/conversations/live/messages"+query, token, nil, http.StatusOK, &h)
		var seqs []uint64
		for _, ev := range h.Messages {
			seqs = append(seqs, ev.Seq)
		}
		return seqs, h
	}
	got, h := page(at, "")
	if !slices.Equal(got, want) {
		t.Fatalf("stream-only history %v, want %v", got, want)
	}
	first := h.Messages[len(h.Messages)-1]
	if first.Type != protocol.TypeMember || first.Member == nil || first.Member.Action != streams.MemberCreated {
		t.Fatalf("member event %+v", first)
	}
	if last := h.Messages[0]; last.Type != protocol.TypeMessage || last.Text != "live 11" || last.SenderID != bob.ID {
		t.Fatalf("newest event %+v", last)
	}
	if got, h := page(bt, "?limit=3&before="+fmt.Sprint(want[3])); !slices.Equal(got, want[4:7]) || h.Older != want[6] || h.Newer != want[4] {
		t.Fatalf("before: %v %+v", got, h)
	}
	if got, h := page(bt, "?limit=2&after="+fmt.Sprint(want[5])); !slices.Equal(got, want[3:5]) || h.Older != want[4] || h.Newer != want[3] {
		t.Fatalf("after: %v %+v", got, h)
	}
	// Jumping to a message that only the stream holds.
	if got, _ := page(at, "?limit=3&around_id="+ids[want[6]]); !slices.Equal(got, want[5:8]) {
		t.Fatalf("around_id in stream: %v, want %v", got, want[5:8])
	}

	// The persister catches up on the older half: stored and streamed events merge by seq.
	for _, seq := range want[6:] {
		if _, _, err := e.store.InsertMessage(testContext(t), store.Message{
			ConversationID: "live", Seq: seq, ID: ids[seq], Kind: streams.KindMsg, SenderID: bob.ID, Text: "stored",
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := page(at, ""); !slices.Equal(got, want) {
		t.Fatalf("merged history %v, want %v", got, want)
	}
	if got, _ := page(at, "?limit=4&around_id="+ids[want[7]]); !slices.Equal(got, want[5:9]) {
		t.Fatalf("around_id in store: %v, want %v", got, want[5:9])
	}
}
