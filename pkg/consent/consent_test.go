package consent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

const (
	ann  = "01J9ZK2A4C6E8G0J2L4N6Q8S0U"
	bob  = "01J9ZK3B5D7F9H1K3M5P7R9T1V"
	cy   = "01J9ZK4C6E8G0J2L4N6Q8S0U2W"
	dm   = "dk3v8q2w5x7y9a1b3c5d7e9f1g"
	grp  = "g01J9ZK5D7F9H1K3M5P7R9T1V3"
	dmOK = "dk3v8q2w5x7y9a1b3c5d7e9f1h"
)

func publish(t *testing.T, js jetstream.JetStream, ev streams.StateEvent) uint64 {
	t.Helper()
	data, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(ev.Subject())
	msg.Data = data
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// The mirror loads what is on STATE (only the last event of each subject counts), follows
// what comes after, and answers the rules from it.
func TestWatchLoadsAndFollowsTheStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
	js := bus.JS
	users := []string{ann, bob}
	// Account events are not consent: they stay out of CONSENT, and their seqs make STATE's and
	// CONSENT's numbering differ (the table counts in STATE seqs).
	publish(t, js, streams.StateEvent{Kind: streams.StateAccountCreated, At: 1, Account: &streams.AccountState{UserID: ann, Handle: "ann", DisplayName: "Ann", PasswordHash: "$2a$04$hash"}})
	publish(t, js, streams.StateEvent{Kind: streams.StateAccountCreated, At: 1, Account: &streams.AccountState{UserID: bob, Handle: "bob", DisplayName: "Bob", PasswordHash: "$2a$04$hash"}})
	publish(t, js, streams.StateEvent{Kind: streams.StateDirectOpened, At: 1, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, CreatedBy: ann, Request: true}})
	publish(t, js, streams.StateEvent{Kind: streams.StateDirectOpened, At: 1, Direct: &streams.DirectState{ConversationID: dmOK, UserIDs: []string{ann, cy}, CreatedBy: ann, Request: true}})
	publish(t, js, streams.StateEvent{Kind: streams.StateDirectAccepted, At: 2, Direct: &streams.DirectState{ConversationID: dmOK, UserIDs: []string{ann, cy}, By: cy}})
	publish(t, js, streams.StateEvent{Kind: streams.StateUserBlocked, At: 3, Block: &streams.BlockState{UserID: cy, BlockedID: bob}})
	publish(t, js, streams.StateEvent{Kind: streams.StateUserBlocked, At: 3, Block: &streams.BlockState{UserID: bob, BlockedID: cy}})
	publish(t, js, streams.StateEvent{Kind: streams.StateUserUnblocked, At: 4, Block: &streams.BlockState{UserID: bob, BlockedID: cy}})
	last := publish(t, js, streams.StateEvent{Kind: streams.StatePresenceSet, At: 5, Privacy: &streams.PrivacyState{UserID: cy, Presence: streams.PresenceContacts}})
	// A writer waits for its event as the API does: then it is in CONSENT, for anyone to load.
	writer, err := Watch(ctx, js, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	writer.Stop()

	tb, err := Watch(ctx, js, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Stop()
	if _, ok := tb.Request(dm); !ok {
		t.Error("the open request is not loaded")
	}
	if _, ok := tb.Request(dmOK); ok {
		t.Error("an accepted request is still open")
	}
	if !tb.Blocked(cy, bob) || tb.Blocked(bob, cy) {
		t.Errorf("blocks: cy->bob %v (want true), bob->cy %v (want false)", tb.Blocked(cy, bob), tb.Blocked(bob, cy))
	}
	if v := tb.PresenceVisibility(cy); v != streams.PresenceContacts {
		t.Errorf("cy's visibility %q", v)
	}
	// The rules on what was loaded.
	if tb.SeesMessage(bob, ann, dm) || !tb.SeesMessage(ann, bob, dm) {
		t.Error("a request holds the requester's messages from the recipient, and only those")
	}
	if tb.SeesActivity(ann, bob, dm) || tb.SeesActivity(bob, ann, dm) {
		t.Error("typing and receipts pass a request")
	}
	if tb.SeesMessage(cy, bob, grp) || !tb.SeesMessage(bob, cy, grp) {
		t.Error("in a group a block hides the blocked user's messages from the blocker only")
	}
	if tb.SeesPresence(bob, cy, Ties{Conversation: true, Contact: true}) || tb.SeesPresence(cy, bob, Ties{Conversation: true, Contact: true}) {
		t.Error("presence crosses a block")
	}
	if tb.SeesPresence(ann, cy, Ties{Conversation: true}) || !tb.SeesPresence(ann, cy, Ties{Conversation: true, Contact: true}) {
		t.Error("contacts-only presence")
	}

	// And what comes later, with WaitFor as the barrier.
	seq := publish(t, js, streams.StateEvent{Kind: streams.StateDirectAccepted, At: 6, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, By: bob}})
	if err := tb.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if !tb.SeesMessage(bob, ann, dm) || !tb.SeesActivity(bob, ann, dm) {
		t.Error("an accepted request still holds")
	}
	seq = publish(t, js, streams.StateEvent{Kind: streams.StateUserUnblocked, At: 7, Block: &streams.BlockState{UserID: cy, BlockedID: bob}})
	if err := tb.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if len(tb.Blocks(cy)) != 0 || tb.Blocked(cy, bob) {
		t.Errorf("unblock: %v", tb.Blocks(cy))
	}
	tb.mu.RLock()
	applied := tb.applied
	tb.mu.RUnlock()
	if applied != seq {
		t.Errorf("applied STATE seq %d, want %d (the seq of the last consent event on STATE)", applied, seq)
	}
}

// CONSENT keeps only the last event of a subject: a table loaded after a request was ignored
// sees the ignore alone, and must still hold the requester's messages from the one who ignored.
func TestIgnoredRequestSurvivesAReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
	users := []string{ann, bob}
	publish(t, bus.JS, streams.StateEvent{Kind: streams.StateDirectOpened, At: 1, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, CreatedBy: ann, Request: true}})
	seq := publish(t, bus.JS, streams.StateEvent{Kind: streams.StateDirectIgnored, At: 2, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, By: bob}})
	first, err := Watch(ctx, bus.JS, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.WaitFor(ctx, seq); err != nil { // copied into CONSENT
		t.Fatal(err)
	}
	first.Stop()
	tb, err := Watch(ctx, bus.JS, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Stop()
	r, ok := tb.Request(dm)
	if !ok || !r.Ignored || r.From != ann || r.To != bob {
		t.Fatalf("after a reload the ignored request is %+v %v", r, ok)
	}
	if tb.SeesMessage(bob, ann, dm) || !tb.SeesMessage(ann, bob, dm) {
		t.Error("after a reload an ignored request delivers the requester's messages")
	}
}

func TestSourceSeq(t *testing.T) {
	for header, want := range map[string]uint64{"STATE 42 state.direct.> > state.direct.x": 42, "STATE:abc 7": 7, "": 0, "STATE": 0, "STATE x": 0, "STATE 0": 0} {
		if got, ok := SourceSeq(header); got != want || ok != (want > 0) {
			t.Errorf("SourceSeq(%q) = %d, %v; want %d", header, got, ok, want)
		}
	}
}

// An ignored request stays a request; replaying an older event changes nothing.
func TestApplyIsIdempotentAndIgnoreKeepsTheRequest(t *testing.T) {
	tb := New()
	open := streams.StateEvent{Kind: streams.StateDirectOpened, At: 1, Direct: &streams.DirectState{ConversationID: dm, UserIDs: []string{ann, bob}, CreatedBy: ann, Request: true}}
	tb.Apply(1, open)
	tb.Apply(2, streams.StateEvent{Kind: streams.StateDirectIgnored, At: 2, Direct: &streams.DirectState{ConversationID: dm, UserIDs: []string{ann, bob}, By: bob}})
	tb.Apply(1, open) // a replay of the open: not after the ignore
	r, ok := tb.Request(dm)
	if !ok || !r.Ignored || r.From != ann || r.To != bob {
		t.Fatalf("request %+v %v", r, ok)
	}
	if tb.SeesMessage(bob, ann, dm) {
		t.Error("an ignored request delivers")
	}
}

// BenchmarkSeesMessage is the cost fanout pays per member and message: with 100,000 blocks and
// 100,000 open requests in the table.
func BenchmarkSeesMessage(b *testing.B) {
	tb := New()
	for i := range 100_000 {
		u, o := fmt.Sprintf("u%d", i), fmt.Sprintf("o%d", i)
		tb.Apply(uint64(2*i+1), streams.StateEvent{Kind: streams.StateUserBlocked, At: 1, Block: &streams.BlockState{UserID: u, BlockedID: o}})
		tb.Apply(uint64(2*i+2), streams.StateEvent{Kind: streams.StateDirectOpened, At: 1,
			Direct: &streams.DirectState{ConversationID: fmt.Sprintf("d%d", i), UserIDs: []string{u, o}, CreatedBy: u, Request: true}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if !tb.SeesMessage(ann, bob, dm) {
			b.Fatal("hidden")
		}
	}
}

// Sync waits for what is on CONSENT now: after it returns, an event whose writer waited for it
// (WaitFor, as the API does before it answers) is applied; a table that stopped following
// cannot pass it.
func TestSyncWaitsForTheStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
	live, err := Watch(ctx, bus.JS, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	stale, err := Watch(ctx, bus.JS, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stale.Stop()
	writer, err := Watch(ctx, bus.JS, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Stop()
	if err := stale.Sync(ctx, 100*time.Millisecond); err != nil {
		t.Fatalf("nothing on CONSENT yet: %v", err)
	}
	for i := range 20 {
		seq := publish(t, bus.JS, streams.StateEvent{Kind: streams.StateUserBlocked, At: int64(i), Block: &streams.BlockState{UserID: ann, BlockedID: fmt.Sprintf("u%d", i)}})
		if err := writer.WaitFor(ctx, seq); err != nil {
			t.Fatal(err)
		}
		if err := live.Sync(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if !live.Blocked(ann, fmt.Sprintf("u%d", i)) {
			t.Fatalf("block %d not applied after Sync", i)
		}
	}
	if err := stale.Sync(ctx, 100*time.Millisecond); err == nil {
		t.Fatal("a table that stopped following passed Sync")
	}
}

// A request's notices go to whom each state concerns: both users when it is made (not its
// recipient across a block) and accepted; only the one who ignored it, when ignored.
func TestRequestNotices(t *testing.T) {
	tb := New()
	var got []Notice
	stop := tb.OnRequest(func(n Notice) { got = append(got, n) })
	users := []string{ann, bob}
	tb.Apply(1, streams.StateEvent{Kind: streams.StateDirectOpened, At: 1, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, CreatedBy: ann, Request: true}})
	tb.Apply(2, streams.StateEvent{Kind: streams.StateDirectIgnored, At: 2, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, By: bob}})
	tb.Apply(2, streams.StateEvent{Kind: streams.StateDirectIgnored, At: 2, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, By: bob}}) // a repeat: no notice
	tb.Apply(3, streams.StateEvent{Kind: streams.StateDirectAccepted, At: 3, Direct: &streams.DirectState{ConversationID: dm, UserIDs: users, By: bob}})
	tb.Apply(4, streams.StateEvent{Kind: streams.StateUserBlocked, At: 4, Block: &streams.BlockState{UserID: cy, BlockedID: ann}})
	tb.Apply(5, streams.StateEvent{Kind: streams.StateDirectOpened, At: 5, Direct: &streams.DirectState{ConversationID: dmOK, UserIDs: []string{ann, cy}, CreatedBy: ann, Request: true}})
	stop()
	tb.Apply(6, streams.StateEvent{Kind: streams.StateDirectAccepted, At: 6, Direct: &streams.DirectState{ConversationID: dmOK, UserIDs: []string{ann, cy}, By: cy}})
	want := []struct {
		state string
		users []string
	}{{RequestOpen, []string{ann, bob}}, {RequestIgnored, []string{bob}}, {RequestAccepted, []string{ann, bob}}, {RequestOpen, []string{ann}}}
	if len(got) != len(want) {
		t.Fatalf("%d notices, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].State != w.state || fmt.Sprint(got[i].Users) != fmt.Sprint(w.users) || got[i].Request.From != ann {
			t.Errorf("notice %d: %+v, want %s to %v from ann", i, got[i], w.state, w.users)
		}
	}
}

// BenchmarkSync is fanout's consent barrier before each chunk: one get of the last message of
// CONSENT and a wait that is already over (the reference: the three last-by-subject gets of
// STATE the barrier made before CONSENT existed).
func BenchmarkSync(b *testing.B) {
	ctx := context.Background()
	bus := natsxtest.Start(b)
	for i := range 100 {
		data, _ := streams.StateEvent{Kind: streams.StateUserBlocked, At: 1, Block: &streams.BlockState{UserID: ann, BlockedID: fmt.Sprintf("u%d", i)}}.Encode()
		if _, err := bus.JS.Publish(ctx, streams.BlockSubject(ann, fmt.Sprintf("u%d", i)), data); err != nil {
			b.Fatal(err)
		}
	}
	tb, err := Watch(ctx, bus.JS, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Stop()
	b.Run("consent", func(b *testing.B) {
		for b.Loop() {
			if err := tb.Sync(ctx, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	state, err := bus.JS.Stream(ctx, streams.StateStream)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("state-reference", func(b *testing.B) {
		for b.Loop() {
			for _, subject := range streams.ConsentSubjects {
				if _, err := state.GetLastMsgForSubject(ctx, subject); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					b.Fatal(err)
				}
			}
		}
	})
}
