package revision

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/pkg/timeline"
	"github.com/natter-chat/natter/sdk/go/protocol"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

func TestMayModerateIsTheGroupOwner(t *testing.T) {
	group, direct := store.Conversation{Kind: store.Group}, store.Conversation{Kind: store.Direct}
	for _, tc := range []struct {
		conv store.Conversation
		m    store.Member
		want bool
	}{
		{group, store.Member{Role: "owner"}, true},
		{group, store.Member{Role: "owner", LeftSeq: 9}, false},
		{group, store.Member{Role: "member"}, false},
		{direct, store.Member{Role: "owner"}, false},
	} {
		if got := MayModerate(tc.conv, tc.m); got != tc.want {
			t.Errorf("MayModerate(%s, %+v) = %v, want %v", tc.conv.Kind, tc.m, got, tc.want)
		}
	}
}

// TestEditWindowIsInclusive: an edit exactly at the end of the window is allowed, one
// millisecond later it is not; a delete has no window.
func TestEditWindowIsInclusive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
	st := pebbletest.Open(t)
	sent := time.UnixMilli(1_800_000_000_000).UTC()
	if err := st.PutMember(ctx, store.Member{ConversationID: "d1", UserID: "alice", Role: "member"}); err != nil {
		t.Fatal(err)
	}
	ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "d1", MessageID: "m1", SenderID: "alice", Text: "hi", SentAt: sent.UnixMilli()}
	data, _ := ev.Encode()
	ack, err := bus.JS.Publish(ctx, streams.ChatSubject("d1", streams.KindMsg), data)
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	d := &Decider{Store: st, Timeline: timeline.New(st, bus.JS), EditWindow: 10 * time.Minute, Now: func() time.Time { return now }}
	for _, tc := range []struct {
		kind string
		at   time.Duration
		want *protocol.Error
	}{
		{streams.KindEdit, 10 * time.Minute, nil},
		{streams.KindEdit, 10*time.Minute + time.Millisecond, ErrEditExpired},
		{streams.KindDelete, 48 * time.Hour, nil},
	} {
		now = sent.Add(tc.at)
		got, refused, err := d.Decide(ctx, Request{Kind: tc.kind, ConversationID: "d1", TargetSeq: ack.Sequence, UserID: "alice", ClientMsgID: "k", Text: "new"})
		if err != nil {
			t.Fatal(err)
		}
		if refused != tc.want {
			t.Errorf("%s after %s: refused %v, want %v", tc.kind, tc.at, refused, tc.want)
		}
		if refused == nil && (got.Target == nil || got.Target.Seq != ack.Sequence || got.Target.MessageID != "m1" || got.SentAt != now.UnixMilli()) {
			t.Errorf("%s after %s: event %+v", tc.kind, tc.at, got)
		}
	}
}

// PreviousOutside finds a first attempt older than CHAT's duplicate window in the unstored stream
// and reads on to the first event sent within a third of the window, no further (what comes
// after it is JetStream's to recognise); Previous reads to the head. The window is the stream's
// as it is configured now, whatever the process was started with.
func TestPreviousOutsideLooksOnlyPastTheWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t) // CHAT with the default window, 15 s
	st := pebbletest.Open(t)
	now := time.UnixMilli(1_800_000_000_000).UTC()
	for _, e := range []struct {
		cmid string
		age  time.Duration
	}{{"old", 20 * time.Second}, {"mid", 8 * time.Second}, {"behind-mid", 25 * time.Second},
		{"young", time.Second}, {"behind-young", 30 * time.Second}} {
		ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "d1", MessageID: "m-" + e.cmid, SenderID: "alice",
			ClientMsgID: e.cmid, Text: "hi", SentAt: now.Add(-e.age).UnixMilli()}
		data, _ := ev.Encode()
		if _, err := bus.JS.Publish(ctx, streams.ChatSubject("d1", streams.KindMsg), data); err != nil {
			t.Fatal(err)
		}
	}
	everywhere := map[string]bool{"old": true, "mid": true, "behind-mid": true, "young": true, "behind-young": true}
	for _, tc := range []struct {
		window  time.Duration // CHAT's, set before the lookups
		outside []string      // the ids PreviousOutside finds
	}{
		// "mid" (8 s) is more than a third of 15 s old; "young" (1 s) is the first event within
		// a third, read but nothing after it.
		{15 * time.Second, []string{"old", "mid", "behind-mid", "young"}},
		// A third of 45 s is 15 s: the read stops at "mid".
		{45 * time.Second, []string{"old", "mid"}},
		// A third of 2.4 s is 0.8 s: nothing is within it, so the read goes to the head.
		{2400 * time.Millisecond, []string{"old", "mid", "behind-mid", "young", "behind-young"}},
	} {
		info, err := bus.JS.Stream(ctx, streams.ChatStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := info.CachedInfo().Config
		cfg.Duplicates = tc.window
		if _, err := bus.JS.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		// A new reader: the stream info behind the window is reused for a second.
		d := &Decider{Store: st, Timeline: timeline.New(st, bus.JS), Now: func() time.Time { return now }}
		for _, cmid := range []string{"old", "mid", "behind-mid", "young", "behind-young", "never"} {
			want := slices.Contains(tc.outside, cmid)
			if m, ok, err := d.PreviousOutside(ctx, "d1", "alice", cmid); err != nil || ok != want || ok && m.ClientMsgID != cmid {
				t.Errorf("CHAT window %s: PreviousOutside(%s) = %+v, %v, %v; want found %v", tc.window, cmid, m, ok, err, want)
			}
			if _, ok, err := d.Previous(ctx, "d1", "alice", cmid); err != nil || ok != everywhere[cmid] {
				t.Errorf("Previous(%s) = %v, %v; want found %v", cmid, ok, err, everywhere[cmid])
			}
		}
	}
}
