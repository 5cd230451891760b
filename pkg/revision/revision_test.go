package revision

import (
	"context"
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

// PreviousOutside finds a first attempt older than the duplicate window in the unstored stream
// and reads on to the first event sent within a third of the window, no further (what comes
// after it is JetStream's to recognise); Previous reads to the head.
func TestPreviousOutsideLooksOnlyPastTheWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
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
	d := &Decider{Store: st, Timeline: timeline.New(st, bus.JS), Now: func() time.Time { return now }}
	const window = 15 * time.Second
	for _, tc := range []struct {
		cmid                string
		window              time.Duration
		outside, everywhere bool
	}{
		{"old", window, true, true},
		{"behind-mid", window, true, true},    // "mid" (8 s) is more than a third of the window old
		{"young", window, true, true},         // the first event within a third of it is read
		{"behind-young", window, false, true}, // but nothing after it
		{"behind-young", 0, true, true},
		{"never", window, false, false},
	} {
		m, ok, err := d.PreviousOutside(ctx, "d1", "alice", tc.cmid, tc.window)
		if err != nil || ok != tc.outside || ok && m.ClientMsgID != tc.cmid {
			t.Errorf("PreviousOutside(%s, window %s) = %+v, %v, %v; want found %v", tc.cmid, tc.window, m, ok, err, tc.outside)
		}
		if _, ok, err := d.Previous(ctx, "d1", "alice", tc.cmid); err != nil || ok != tc.everywhere {
			t.Errorf("Previous(%s) = %v, %v; want found %v", tc.cmid, ok, err, tc.everywhere)
		}
	}
}
