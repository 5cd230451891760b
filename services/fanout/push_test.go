package fanout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/streams"
)

// pushRequests waits until PUSH holds n requests and returns them by user.
func (e *env) pushRequests(t *testing.T, n int) map[string]*jetstream.RawStreamMsg {
	t.Helper()
	st, err := e.js.Stream(e.ctx, streams.PushStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := st.Info(e.ctx, jetstream.WithSubjectFilter(streams.PushAll))
		if err != nil {
			t.Fatal(err)
		}
		if int(info.State.Msgs) == n {
			out := map[string]*jetstream.RawStreamMsg{}
			for subj := range info.State.Subjects {
				m, err := st.GetLastMsgForSubject(e.ctx, subj)
				if err != nil {
					t.Fatal(err)
				}
				out[strings.TrimPrefix(subj, "push.")] = m
			}
			return out
		}
		if int(info.State.Msgs) > n || time.Now().After(deadline) {
			t.Fatalf("PUSH holds %d requests %v, want %d", info.State.Msgs, info.State.Subjects, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPushRequestsForMembersWithNoConnectedDevice(t *testing.T) {
	e := newEnv(t)
	gw := e.gateway(t, "gwA")
	e.route(t, gw, "alice", "phone") // the sender
	e.route(t, gw, "bob", "laptop")  // online
	e.route(t, gw, "bob", "tablet")  // online twice
	e.putMember(t, "c1", "alice", 0, 0)
	e.putMember(t, "c1", "bob", 0, 0)
	e.putMember(t, "c1", "carol", 0, 0)   // offline: gets a push
	e.putMember(t, "c1", "dave", 0, 0)    // offline: gets a push
	e.putMember(t, "c1", "frank", 0, 1)   // left: nothing
	e.putMember(t, "c1", "gina", 1000, 0) // joins later: nothing
	e.putConversation(t, "c1", store.Group)
	e.start(t)
	e.msg(t, "c0") // seq 1, before the message: frank left at it

	text := strings.Repeat("ü", 2*streams.PushPreviewRunes)
	seq, ev := e.publish(t, streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "c1", Text: text, ClientMsgID: "x1"})
	gw.expect(t, eventDelivery(seq, []string{"alice", "bob"}, ev))
	reqs := e.pushRequests(t, 2)
	for _, user := range []string{"carol", "dave"} {
		m := reqs[user]
		if m == nil {
			t.Fatalf("no push request for %s: %v", user, reqs)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != ev.MessageID+":"+user {
			t.Fatalf("%s: Nats-Msg-Id %q", user, got)
		}
		req, err := streams.DecodePushRequest(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		want := streams.PushRequest{V: streams.Version, UserID: user, ConversationID: "c1", MessageID: ev.MessageID, Seq: seq,
			SenderID: "alice", Text: strings.Repeat("ü", streams.PushPreviewRunes), Truncated: true, SentAt: ev.SentAt}
		if req != want {
			t.Fatalf("%s: request\n got %+v\nwant %+v", user, req, want)
		}
		if !utf8.ValidString(req.Text) {
			t.Fatal("cut text is not UTF-8")
		}
	}

	kv, err := e.js.KeyValue(e.ctx, streams.PushLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"laptop", "tablet"} {
		kve, err := kv.Get(e.ctx, streams.PushLedgerKey("bob", ev.MessageID, dev))
		if err != nil {
			t.Fatalf("bob/%s: %v", dev, err)
		}
		var le streams.PushLedgerEntry
		if err := json.Unmarshal(kve.Value(), &le); err != nil {
			t.Fatal(err)
		}
		if le.Outcome != streams.PushSkipped || le.Reason != streams.PushReasonOnline || le.Detail != "connected to gateway gwA" ||
			le.ConversationID != "c1" || le.DeviceID != dev || le.At == 0 {
			t.Fatalf("bob/%s: %+v", dev, le)
		}
	}
	if _, err := kv.Get(e.ctx, streams.PushLedgerKey("alice", ev.MessageID, "phone")); err == nil {
		t.Fatal("the sender has a ledger entry")
	}

	// Membership events and receipts push nothing.
	target := &streams.Target{Seq: seq, MessageID: ev.MessageID}
	seq, ev = e.publish(t, streams.ChatEvent{Kind: streams.KindMember, ConversationID: "c1",
		Member: &streams.MemberChange{Action: streams.MemberRenamed, Name: "new name"}})
	gw.expect(t, eventDelivery(seq, []string{"alice", "bob"}, ev))
	e.pushRequests(t, 2)

	// Nor do edits, deletes and hides: each reaches the devices online, and the next message's
	// pushes (published before its delivery) are the only new requests.
	for _, rev := range []struct {
		ev    streams.ChatEvent
		users []string
	}{
		{streams.ChatEvent{Kind: streams.KindEdit, ConversationID: "c1", Target: target, Text: "edited", ClientMsgID: "e1"}, []string{"alice", "bob"}},
		{streams.ChatEvent{Kind: streams.KindHide, ConversationID: "c1", Target: target, SenderID: "bob", ClientMsgID: "h1"}, []string{"bob"}},
		{streams.ChatEvent{Kind: streams.KindDelete, ConversationID: "c1", Target: target, ClientMsgID: "d1"}, []string{"alice", "bob"}},
	} {
		seq, ev = e.publish(t, rev.ev)
		gw.expect(t, eventDelivery(seq, rev.users, ev))
	}
	seq, ev = e.msg(t, "c1")
	gw.expect(t, eventDelivery(seq, []string{"alice", "bob"}, ev))
	e.pushRequests(t, 4)
}

func TestNoOnlineLedgerWhenDisabled(t *testing.T) {
	e := newEnv(t)
	gw := e.gateway(t, "gwA")
	e.route(t, gw, "bob", "laptop")
	e.putMember(t, "c1", "alice", 0, 0)
	e.putMember(t, "c1", "bob", 0, 0)
	e.putConversation(t, "c1", store.Direct)
	cfg := DefaultConfig()
	cfg.PushOnlineLedger = false
	f, err := New(cfg, Deps{Log: zap.NewNop(), NC: e.nc, JS: e.js, Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Stop(e.ctx) }()
	seq, ev := e.msg(t, "c1")
	gw.expect(t, eventDelivery(seq, []string{"bob"}, ev))
	kv, err := e.js.KeyValue(e.ctx, streams.PushLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(e.ctx, streams.PushLedgerKey("bob", ev.MessageID, "laptop")); err == nil {
		t.Fatal("ledger entry written with PushOnlineLedger off")
	}
	e.pushRequests(t, 0)
}
