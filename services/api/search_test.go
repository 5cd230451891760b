package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/services/search"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// startSearch runs the search process's service and query server on the test's NATS.
func (e *env) startSearch(t *testing.T) {
	t.Helper()
	met, _ := search.NewMetrics(nil)
	cfg := search.DefaultConfig()
	cfg.Dir = t.TempDir() + "/search"
	svc, err := search.New(cfg, search.Deps{Log: zap.NewNop(), JS: e.js, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	srv, err := search.Serve(e.js.Conn(), svc, cfg, zap.NewNop(), met)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
		if err := svc.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
}

// waitSearchIndexed waits until the search consumer has indexed CHAT up to seq.
func (e *env) waitSearchIndexed(t *testing.T, seq uint64) {
	t.Helper()
	c := wire.NewClient(e.js.Conn(), 5*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(testContext(t))
		if err == nil && st.IndexedSeq >= seq && st.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("search index not at %d: %+v %v", seq, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// searchAll follows the cursor through every page of GET /v1/search?query and returns the
// hits' "conversation/seq" in order.
func (e *env) searchAll(t *testing.T, token, query string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("search %s: paging does not end", query)
		}
		var res searchJSON
		e.call(t, "GET", "/v1/search?"+query+cursor, token, nil, http.StatusOK, &res)
		for _, h := range res.Hits {
			out = append(out, fmt.Sprintf("%s/%d", h.ConversationID, h.Seq))
		}
		if res.NextCursor == "" {
			return out
		}
		cursor = "&cursor=" + url.QueryEscape(res.NextCursor)
	}
}

// visibleByHistory is what history shows token of conv with word in its text, as
// "conversation/seq" newest first: the reference the search results must equal.
func (e *env) visibleByHistory(t *testing.T, token, conv, word string) (found []string, member bool) {
	t.Helper()
	out := []string{}
	before := ""
	for {
		var h historyJSON
		status, raw := e.do(t, "GET", "/v1/conversations/"+conv+"/messages?limit=200"+before, token, nil)
		if status == http.StatusNotFound {
			return nil, false
		}
		if err := json.Unmarshal(raw, &h); status != http.StatusOK || err != nil {
			t.Fatalf("history of %s: %d %s", conv, status, raw)
		}
		for _, m := range h.Messages {
			if m.Member == nil && strings.Contains(m.Text, word) {
				out = append(out, fmt.Sprintf("%s/%d", conv, m.Seq))
			}
		}
		if h.Older == 0 {
			return out, true
		}
		before = fmt.Sprintf("&before=%d", h.Older)
	}
}

// TestSearchMembershipMatrix: whoever asks, search finds exactly the messages with the word
// that history shows them, in every conversation at once and in one named conversation: a
// member from the start, a member added later (nothing before the add), a removed member
// (nothing after the removal), a direct conversation's two members, and a user who never was a
// member (nothing, and not_member when naming the conversation, byte for byte as for a
// conversation that does not exist).
func TestSearchMembershipMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice") // in the group from the start; direct with bob
	bob, bt := e.user(t, "bob")     // direct with alice only
	carol, ct := e.user(t, "carol") // added to the group later
	dave, dt := e.user(t, "dave")   // removed from the group
	_, et := e.user(t, "eve")       // never a member of anything
	rita, rt := e.user(t, "rita")   // in the group twice, with a gap between

	var groupSeqs []uint64
	var last uint64
	for i := range 30 {
		last, _ = e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "grp", SenderID: alice.ID,
			Text: fmt.Sprintf("apple number %d in the group", i)})
		groupSeqs = append(groupSeqs, last)
		if i%3 == 0 {
			_, _ = e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "dm", SenderID: bob.ID,
				Text: fmt.Sprintf("apple %d between two", i)})
		}
	}
	last, _ = e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "other", SenderID: bob.ID, Text: "apple elsewhere"})
	joined, left := groupSeqs[9], groupSeqs[19]
	e.conversation(t, "grp",
		store.Member{UserID: alice.ID, Role: "owner"},
		store.Member{UserID: carol.ID, JoinedSeq: joined},
		store.Member{UserID: dave.ID, LeftSeq: left},
		store.Member{UserID: rita.ID, JoinedSeq: groupSeqs[24], Earlier: []store.Interval{{JoinedSeq: groupSeqs[4], LeftSeq: groupSeqs[14]}}},
	)
	e.conversation(t, "dm", store.Member{UserID: alice.ID}, store.Member{UserID: bob.ID})
	e.conversation(t, "other", store.Member{UserID: alice.ID, LeftSeq: 1}) // left before anything was sent

	e.startSearch(t)
	e.waitSearchIndexed(t, last)

	convs := []string{"grp", "dm", "other"}
	for _, tc := range []struct {
		who, token string
		min        int // hits at least: the reference must not be empty by mistake
	}{
		{"alice", at, 40}, {"bob", bt, 10}, {"carol", ct, 20}, {"dave", dt, 20}, {"eve", et, 0}, {"rita", rt, 15},
	} {
		var want []string
		for _, conv := range convs {
			found, _ := e.visibleByHistory(t, tc.token, conv, "apple")
			want = append(want, found...)
		}
		got := e.searchAll(t, tc.token, "q=apple&limit=7")
		if len(want) < tc.min {
			t.Fatalf("%s: history shows only %d messages", tc.who, len(want))
		}
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
			t.Errorf("%s finds %v\nhistory shows %v", tc.who, got, want)
		}
		for _, conv := range convs {
			want, member := e.visibleByHistory(t, tc.token, conv, "apple")
			if !member {
				e.wantError(t, "GET", "/v1/search?q=apple&conversation_id="+conv, tc.token, nil, http.StatusNotFound, protocol.CodeNotMember)
				continue
			}
			got := e.searchAll(t, tc.token, "q=apple&conversation_id="+conv)
			if !slices.Equal(got, want) { // equal scores: newest first, as history
				t.Errorf("%s in %s finds %v\nhistory shows %v", tc.who, conv, got, want)
			}
		}
	}
	// Spot checks of the bounds themselves.
	if got := e.searchAll(t, ct, "q=apple&conversation_id=grp"); len(got) != 20 || got[len(got)-1] != fmt.Sprintf("grp/%d", groupSeqs[10]) {
		t.Errorf("carol, added at %d: %v", joined, got)
	}
	if got := e.searchAll(t, dt, "q=apple&conversation_id=grp"); len(got) != 20 || got[0] != fmt.Sprintf("grp/%d", left) {
		t.Errorf("dave, removed at %d: %v", left, got)
	}

	// Naming a conversation one never was in is answered as for one that does not exist.
	_, reference := e.do(t, "GET", "/v1/search?q=apple&conversation_id=nosuchconv", et, nil)
	for _, tc := range []struct{ token, conv string }{{et, "grp"}, {et, "dm"}, {bt, "grp"}, {ct, "dm"}, {et, "bad.id"}} {
		status, raw := e.do(t, "GET", "/v1/search?q=apple&conversation_id="+tc.conv, tc.token, nil)
		if status != http.StatusNotFound || !bytes.Equal(raw, reference) || !bytes.Contains(raw, []byte(protocol.CodeNotMember)) {
			t.Errorf("conversation %s: %d %s, want %s", tc.conv, status, raw, reference)
		}
	}
}

func TestSearchLanguagesPagingAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice, at := e.user(t, "alice")
	var res searchJSON
	e.call(t, "GET", "/v1/search?q=hello", at, nil, http.StatusOK, &res) // no conversations: nothing to ask
	e.conversation(t, "c", store.Member{UserID: alice.ID})
	e.wantError(t, "GET", "/v1/search?q=hello", at, nil, http.StatusServiceUnavailable, CodeSearchUnavailable)
	var last uint64
	for _, text := range []string{
		"안녕하세요 여러분", "the dogs were running", "a dog runs home", "party 🎉 tonight", "<b>not bold</b> dog",
	} {
		last, _ = e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "c", SenderID: alice.ID, Text: text})
	}
	for i := range 25 {
		last, _ = e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "c", SenderID: alice.ID, Text: fmt.Sprintf("page filler %d", i)})
	}
	e.startSearch(t)
	e.waitSearchIndexed(t, last)

	e.call(t, "GET", "/v1/search?q="+url.QueryEscape("안녕"), at, nil, http.StatusOK, &res)
	if len(res.Hits) != 1 || res.Hits[0].Seq != 1 || res.Hits[0].Snippet != "<mark>안녕</mark>하세요 여러분" ||
		res.Hits[0].ConversationID != "c" || res.Hits[0].MessageID == "" || res.Hits[0].SenderID != alice.ID {
		t.Errorf("안녕: %+v", res)
	}
	if got := e.searchAll(t, at, "q=run"); !slices.Equal(got, []string{"c/3", "c/2"}) {
		t.Errorf("run: %v", got)
	}
	if got := e.searchAll(t, at, "q=dog&before=5"); !slices.Equal(got, []string{"c/3", "c/2"}) {
		t.Errorf("dog before 5: %v", got)
	}
	if got := e.searchAll(t, at, "q="+url.QueryEscape("🎉")); !slices.Equal(got, []string{"c/4"}) {
		t.Errorf("🎉: %v", got)
	}
	e.call(t, "GET", "/v1/search?q=bold", at, nil, http.StatusOK, &res)
	if len(res.Hits) != 1 || res.Hits[0].Snippet != "&lt;b&gt;not <mark>bold</mark>&lt;/b&gt; dog" {
		t.Errorf("snippet is not escaped HTML: %+v", res.Hits)
	}
	got := e.searchAll(t, at, "q=filler&limit=10")
	if len(got) != 25 || got[0] != fmt.Sprintf("c/%d", last) || len(slices.Compact(slices.Sorted(slices.Values(got)))) != 25 {
		t.Errorf("filler pages: %v", got)
	}

	for _, q := range []string{"", "q=", "q=%20", "q=" + strings.Repeat("a", wire.MaxTextRunes+1), "q=a&limit=0", "q=a&limit=101",
		"q=a&before=0", "q=a&before=x", "q=a&cursor=", "q=a&cursor=nonsense", "q=a&cursor=" + strings.Repeat("1", 200)} {
		e.wantError(t, "GET", "/v1/search?"+q, at, nil, http.StatusBadRequest, CodeInvalidRequest)
	}
	e.wantError(t, "GET", "/v1/search?q=%ff", at, nil, http.StatusBadRequest, protocol.CodeInvalidUTF8)
	e.wantError(t, "GET", "/v1/search?q=a", "", nil, http.StatusUnauthorized, CodeUnauthorized)
}

func FuzzParseSearchQuery(f *testing.F) {
	for _, s := range []string{"q=hello", "q=%ED%95%9C&limit=5&before=9&cursor=1.5_3&conversation_id=gABC", "q=&limit=x", "q=a&before=0", "q=%ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var args fasthttp.Args
		args.Parse(raw)
		q, conv, err := parseSearchQuery(&args)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest && ae.status != http.StatusNotFound {
				t.Fatalf("%q: %v is not a 400 or 404 answer", raw, err)
			}
			return
		}
		if conv != "" && !streams.ValidToken(conv) {
			t.Fatalf("%q: conversation %q accepted", raw, conv)
		}
		q.Scopes = []wire.Scope{{ConversationID: "c"}}
		if err := q.Validate(); err != nil {
			t.Fatalf("%q: parsed %+v, which the search process refuses: %v", raw, q, err)
		}
	})
}
