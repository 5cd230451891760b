package push

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/natter-chat/natter/pkg/consent"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/streams"
)

func TestMessageFitsThePayloadLimit(t *testing.T) {
	token := strings.Repeat("t", 163) // an FCM token's usual length
	base := Content{SenderName: strings.Repeat("Ä", 64), ConversationID: strings.Repeat("c", 64), ConversationName: strings.Repeat("名", 64),
		MessageID: "01J9ZK4A0B2C4D6E8F0G2H4J6K", SenderID: strings.Repeat("s", 64), Seq: 1 << 62, Badge: MaxBadge}
	for name, text := range map[string]string{
		"100,000 emoji":            strings.Repeat("😀", 100_000),
		"100,000 ascii":            strings.Repeat("a", 100_000),
		"escaped html":             strings.Repeat(`<&>"\`, 20_000),
		"combining marks":          strings.Repeat("e\u0301", 50_000),
		"control characters":       strings.Repeat("\x01\n", 50_000),
		"invalid utf8 is replaced": strings.Repeat("\xff", 10_000),
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			c.Text = text
			m, err := Message(token, c)
			if err != nil {
				t.Fatal(err)
			}
			size, err := requestSize(m)
			if err != nil {
				t.Fatal(err)
			}
			if size > MaxPayload || size < MaxPayload-64 {
				t.Fatalf("request %d bytes: want at most %d, and the preview filling it", size, MaxPayload)
			}
			body := m.Notification.Body
			if !utf8.ValidString(body) && utf8.ValidString(text) {
				t.Fatal("preview is not valid UTF-8")
			}
			if !strings.HasSuffix(body, "…") || !strings.HasPrefix(text, strings.TrimSuffix(body, "…")) {
				t.Fatalf("preview %q… is not the text's start with an ellipsis", body[:20])
			}
		})
	}
	// A short text is kept whole, with no ellipsis unless the request said the text goes on.
	c := base
	c.Text = "hi"
	if m, err := Message(token, c); err != nil || m.Notification.Body != "hi" {
		t.Fatalf("short: %v %q", err, m.Notification.Body)
	}
	c.Truncated = true
	if m, err := Message(token, c); err != nil || m.Notification.Body != "hi…" {
		t.Fatalf("truncated: %v %q", err, m.Notification.Body)
	}
	// Nothing fits with a token this long: an error, not an oversized request.
	if _, err := Message(strings.Repeat("t", MaxPayload), c); err == nil {
		t.Fatal("an oversized message was built")
	}
}

func TestUnread(t *testing.T) {
	e := newEnv(t)
	ctx, st := e.ctx, e.store
	put := func(conv string, m store.Member) {
		m.ConversationID, m.Role = conv, "member"
		if err := st.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	msgs := func(conv string, from, to uint64, sender, kind string) {
		for seq := from; seq <= to; seq++ {
			if _, _, err := st.InsertMessage(ctx, store.Message{ConversationID: conv, Seq: seq, ID: fmt.Sprintf("%s-%d", conv, seq),
				Kind: kind, SenderID: sender, Text: "x", SentAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// a: 500 messages from alice, bob read up to 100 -> 400 unread, over several pages.
	put("a", store.Member{UserID: "bob"})
	msgs("a", 1, 500, "alice", streams.KindMsg)
	if _, err := st.AdvanceWatermark(ctx, store.Watermark{ConversationID: "a", UserID: "bob", Read: 100}); err != nil {
		t.Fatal(err)
	}
	// b: bob joined at 10: messages before are not his; his own and member events do not count.
	put("b", store.Member{UserID: "bob", JoinedSeq: 10})
	msgs("b", 1, 15, "alice", streams.KindMsg)        // 11..15 count: 5
	msgs("b", 16, 17, "bob", streams.KindMsg)         // his own
	msgs("b", 18, 18, "alice", streams.KindMember)    // not a message
	put("c", store.Member{UserID: "bob", LeftSeq: 3}) // left: nothing counts
	msgs("c", 1, 9, "alice", streams.KindMsg)         //
	tl := timeline.New(st, e.js)
	if n, err := Unread(ctx, st, tl, nil, "bob", MaxBadge); err != nil || n != 405 {
		t.Fatalf("unread %d %v, want 405", n, err)
	}
	if n, err := Unread(ctx, st, tl, nil, "bob", 50); err != nil || n != 50 {
		t.Fatalf("capped unread %d %v, want 50", n, err)
	}
	if n, err := Unread(ctx, st, tl, nil, "nobody", MaxBadge); err != nil || n != 0 {
		t.Fatalf("nobody: %d %v", n, err)
	}
	// bob blocked alice: none of her messages count.
	cons := consent.New()
	cons.Apply(1, streams.StateEvent{Kind: streams.StateUserBlocked, At: 1, Block: &streams.BlockState{UserID: "bob", BlockedID: "alice"}})
	if n, err := Unread(ctx, st, tl, cons, "bob", MaxBadge); err != nil || n != 0 {
		t.Fatalf("unread with alice blocked %d %v, want 0", n, err)
	}
}

func TestExplain(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	entry := func(device, outcome, reason, detail string, attempt int) streams.PushLedgerEntry {
		at += 1000
		return streams.PushLedgerEntry{UserID: "bob", MessageID: "m1", ConversationID: "d1", DeviceID: device,
			Outcome: outcome, Reason: reason, Detail: detail, Attempt: attempt, Provider: map[bool]string{true: "fcm"}[outcome == streams.PushSent], At: at}
	}
	out := Explain("bob", "m1", []streams.PushLedgerEntry{
		entry("laptop", streams.PushSkipped, streams.PushReasonOnline, "gateway gw-1", 0),
		entry("phone", streams.PushRetrying, streams.PushReasonTransient, "fcm: 503 UNAVAILABLE", 1),
		entry("phone", streams.PushSent, "", "", 2),
		entry("tablet", streams.PushFailed, streams.PushReasonUnregistered, "fcm: 404 UNREGISTERED", 1),
	})
	for _, want := range []string{
		"push ledger for user bob, message m1", "conversation d1",
		"2026-01-02 03:04:07.000  device phone       retrying: transient (attempt 1) — fcm: 503 UNAVAILABLE",
		"device laptop: no push: you were online (gateway gw-1)",
		"device phone: a push was sent at 2026-01-02T03:04:08Z",
		"device tablet: no push: FCM said this device's token is no longer registered",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
	if out := Explain("bob", "m1", nil); !strings.Contains(out, "no entries") {
		t.Errorf("empty: %s", out)
	}
	for _, reason := range []string{streams.PushReasonMuted, streams.PushReasonRead, streams.PushReasonNoToken,
		streams.PushReasonInvalidToken, streams.PushReasonDeadLetter, streams.PushReasonRejected} {
		if v := verdict(streams.PushLedgerEntry{Outcome: streams.PushSkipped, Reason: reason}); !strings.HasPrefix(v, "no push: ") {
			t.Errorf("%s: %q", reason, v)
		}
	}
}
