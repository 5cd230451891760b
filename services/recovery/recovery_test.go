package recovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

type env struct {
	ctx context.Context
	bus *natsxtest.Bus
	st  *pebble.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := pebbletest.Open(t) // closed after the server shuts down, as cleanups run last first
	te := natsxtest.Start(t)
	return &env{ctx: te.Ctx, bus: te, st: st}
}

// publish puts n messages of conv on CHAT and returns the last seq.
func (e *env) publish(t *testing.T, conv string, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		ev := streams.ChatEvent{V: streams.Version, Kind: streams.KindMsg, ConversationID: conv, MessageID: fmt.Sprintf("m%s%d", conv, i),
			SenderID: "u1", SenderDevice: "d", ClientMsgID: fmt.Sprintf("c%s%d", conv, i), Text: fmt.Sprintf("text %d", i), SentAt: time.Now().UnixMilli()}
		data, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := e.bus.JS.Publish(e.ctx, streams.ChatSubject(conv, streams.KindMsg), data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	return last
}

func (e *env) messages(t *testing.T, conv string) []store.Message {
	t.Helper()
	ms, err := e.st.Messages(e.ctx, conv, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestReplayCountsThenAppliesIdempotently(t *testing.T) {
	e := newEnv(t)
	e.publish(t, "c1", 5)
	last := e.publish(t, "c2", 3)

	res, err := Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, Target{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 8 || res.Kinds["msg"] != 8 || res.From != 1 || res.Last != last {
		t.Fatalf("dry run = %+v, want 8 msg events 1..%d", res, last)
	}
	if empty, _ := e.st.Empty(e.ctx); !empty {
		t.Fatal("a dry run wrote to the store")
	}

	// A sub-range.
	apply := Target{Apply: Applier(e.st, Chat, zap.NewNop())}
	res, err = Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, apply, Options{Range: Range{FromSeq: 2, ToSeq: 4}})
	if err != nil || res.Events != 3 || res.From != 2 || res.Last != 4 {
		t.Fatalf("range 2..4 = %+v, %v", res, err)
	}
	if got := e.messages(t, "c1"); len(got) != 3 || got[0].Seq != 4 || got[2].Seq != 2 {
		t.Fatalf("after range 2..4 c1 holds %+v", got)
	}
	// Everything, twice: the second run changes nothing.
	for range 2 {
		if _, err := Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, apply, Options{}); err != nil {
			t.Fatal(err)
		}
		if got := e.messages(t, "c1"); len(got) != 5 || got[0].Text != "text 4" {
			t.Fatalf("c1 holds %+v", got)
		}
		if got := e.messages(t, "c2"); len(got) != 3 {
			t.Fatalf("c2 holds %+v", got)
		}
	}
	// Until a time before everything: nothing.
	res, err = Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, Target{}, Options{Range: Range{Until: time.Now().Add(-time.Hour)}})
	if err != nil || res.Events != 0 {
		t.Fatalf("until an hour ago = %+v, %v", res, err)
	}
	// Since now: nothing; since an hour ago: all.
	res, err = Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, Target{}, Options{Range: Range{Since: time.Now().Add(-time.Hour)}})
	if err != nil || res.Events != 8 {
		t.Fatalf("since an hour ago = %+v, %v", res, err)
	}
}

func TestReplayResumesWhereItWasStopped(t *testing.T) {
	e := newEnv(t)
	last := e.publish(t, "c1", 20)
	pos := filepath.Join(t.TempDir(), "pos.json")
	ctx, cancel := context.WithCancel(e.ctx)
	var applied []uint64
	apply := Target{Apply: func(ctx context.Context, subject string, seq uint64, data []byte) error {
		if err := Applier(e.st, Chat, zap.NewNop())(ctx, subject, seq, data); err != nil {
			return err
		}
		applied = append(applied, seq)
		return nil
	}}
	_, err := Run(ctx, e.bus.JS, e.bus.NC, streams.ChatStream, apply, Options{PositionFile: pos, Batch: 4,
		Progress: func(done, _ uint64) {
			if done == 7 {
				cancel() // Ctrl-C after seq 7
			}
		}})
	if err == nil {
		t.Fatal("a cancelled replay reported success")
	}
	if b, err := os.ReadFile(pos); err != nil || !strings.Contains(string(b), `"next_seq":`) {
		t.Fatalf("no position saved: %s %v", b, err)
	}
	stoppedAt := applied[len(applied)-1]
	res, err := Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, apply, Options{PositionFile: pos})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != stoppedAt+1 || res.Last != last {
		t.Fatalf("second run %+v, want resumed at %d and done at %d", res, stoppedAt+1, last)
	}
	for i, seq := range applied {
		if seq != uint64(i+1) {
			t.Fatalf("applied %v: not every seq once, in order", applied)
		}
	}
	if _, err := os.Stat(pos); !os.IsNotExist(err) {
		t.Fatalf("position file left after completion: %v", err)
	}
}

func TestReplayOntoASubject(t *testing.T) {
	e := newEnv(t)
	e.publish(t, "c1", 4)
	if _, err := e.bus.JS.CreateStream(e.ctx, jetstream.StreamConfig{Name: "AUDIT", Subjects: []string{"audit.>"}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a re-run inside the duplicate window adds nothing
		res, err := Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, Target{Subject: "audit.chat"}, Options{})
		if err != nil || res.Events != 4 {
			t.Fatalf("replay onto audit.chat = %+v, %v", res, err)
		}
	}
	s, err := e.bus.JS.Stream(e.ctx, "AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil || info.State.Msgs != 4 {
		t.Fatalf("AUDIT holds %d messages (%v), want 4", info.State.Msgs, err)
	}
	m, err := s.GetMsg(e.ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderSeq) != "3" || m.Header.Get(HeaderStream) != streams.ChatStream || m.Header.Get(HeaderSubject) != "chat.c1.msg" {
		t.Fatalf("headers %v", m.Header)
	}
	// A subject no stream captures: core NATS, flushed before Run returns.
	sub, err := e.bus.NC.SubscribeSync("plain.chat")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if res, err := Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, Target{Subject: "plain.chat"}, Options{}); err != nil || res.Events != 4 {
		t.Fatalf("replay onto plain.chat = %+v, %v", res, err)
	}
	for i := range 4 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || m.Header.Get(HeaderSeq) != fmt.Sprint(i+1) {
			t.Fatalf("core message %d: %v %v", i, m, err)
		}
	}
}

// ackAll acks every event of the persister and projector consumers of CHAT, as if they had
// applied it: their floor is then the stream's last seq.
func (e *env) ackAll(t *testing.T, durable string) {
	t.Helper()
	c, err := e.bus.JS.Consumer(e.ctx, streams.ChatStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	chat, err := e.bus.JS.Stream(e.ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	sinfo, err := chat.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Until the ack floor is CHAT's last seq (the consumer takes every event). Neither an empty
	// pull nor the consumer's pending counts say that all is acknowledged: just after a publish
	// its info can count nothing pending yet (it did in CI, and the helper acknowledged nothing).
	for {
		info, err := c.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= sinfo.State.LastSeq {
			return
		}
		batch, err := c.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCheckpointCoversItsPositions(t *testing.T) {
	e := newEnv(t)
	last := e.publish(t, "c1", 6)
	if _, err := Run(e.ctx, e.bus.JS, e.bus.NC, streams.ChatStream, Target{Apply: Applier(e.st, Chat, zap.NewNop())}, Options{}); err != nil {
		t.Fatal(err)
	}
	e.ackAll(t, streams.PersisterConsumer)
	m, err := Checkpoint(e.ctx, e.bus.JS, e.st, Projections(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.Positions[streams.ChatStream] != last || m.Streams[streams.ChatStream].Last != last {
		t.Fatalf("manifest %+v, want CHAT covered up to %d", m, last)
	}
	ck, err := pebble.Open(m.Dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if p, _, _ := ck.Position(e.ctx, streams.ChatStream); p != last {
		t.Fatalf("checkpoint position %d, want %d", p, last)
	}
	if ms, _ := ck.Messages(e.ctx, "c1", store.Page{}); len(ms) != 6 {
		t.Fatalf("checkpoint holds %d messages, want 6", len(ms))
	}
}

func TestCheckAtStartUp(t *testing.T) {
	log := zap.NewNop()
	t.Run("new install starts", func(t *testing.T) {
		e := newEnv(t)
		if err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), false, log); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("empty store refused, repaired from the streams", func(t *testing.T) {
		e := newEnv(t)
		last := e.publish(t, "c1", 3)
		err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), false, log)
		if err == nil || !strings.Contains(err.Error(), RepairHint) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("check = %v, want one line naming %s", err, RepairHint)
		}
		if err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), true, log); err != nil {
			t.Fatal(err)
		}
		if got := e.messages(t, "c1"); len(got) != 3 {
			t.Fatalf("repaired store holds %d messages, want 3", len(got))
		}
		if p, _, _ := e.st.Position(e.ctx, streams.ChatStream); p != last {
			t.Fatalf("position %d after repair, want %d", p, last)
		}
	})
	t.Run("store behind the ack floor catches up", func(t *testing.T) {
		e := newEnv(t)
		e.publish(t, "c1", 4)
		e.ackAll(t, streams.PersisterConsumer)
		if err := e.st.RecordPosition(e.ctx, streams.ChatStream, 2); err != nil {
			t.Fatal(err)
		}
		if err := e.st.PutDevice(e.ctx, store.Device{UserID: "u", DeviceID: "d"}); err != nil { // not empty
			t.Fatal(err)
		}
		if err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), false, log); err != nil {
			t.Fatal(err)
		}
		if got := e.messages(t, "c1"); len(got) != 2 || got[1].Seq != 3 {
			floor, ok, err := Floor(e.ctx, e.bus.JS, Chat)
			var states []string
			s, _ := e.bus.JS.Stream(e.ctx, streams.ChatStream)
			for info := range s.ListConsumers(e.ctx).Info() {
				states = append(states, fmt.Sprintf("%s: ack floor %d, pending %d, ack pending %d", info.Name, info.AckFloor.Stream, info.NumPending, info.NumAckPending))
			}
			t.Fatalf("after the catch-up c1 holds %+v, want seqs 3 and 4 (floor now %d %v %v; %v)", got, floor, ok, err, states)
		}
	})
	t.Run("gap the stream no longer holds is refused", func(t *testing.T) {
		e := newEnv(t)
		e.publish(t, "c1", 6)
		s, _ := e.bus.JS.Stream(e.ctx, streams.ChatStream)
		if err := s.Purge(e.ctx, jetstream.WithPurgeSequence(5)); err != nil { // keeps 5..6
			t.Fatal(err)
		}
		_ = e.st.RecordPosition(e.ctx, streams.ChatStream, 2)
		err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), true, log)
		if err == nil || !strings.Contains(err.Error(), "events 3..4") || !strings.Contains(err.Error(), "natter restore") {
			t.Fatalf("check = %v, want a refusal naming events 3..4 and natter restore", err)
		}
	})
	t.Run("lost stream refused, repaired to continue after the store", func(t *testing.T) {
		e := newEnv(t)
		_ = e.st.RecordPosition(e.ctx, streams.ChatStream, 41)
		err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), false, log)
		if err == nil || !strings.Contains(err.Error(), RepairHint) || !strings.Contains(err.Error(), "natter restore --streams") {
			t.Fatalf("check = %v, want a refusal naming the repair", err)
		}
		if err := Check(e.ctx, e.bus.JS, e.bus.NC, e.st, Projections(), true, log); err != nil {
			t.Fatal(err)
		}
		if last := e.publish(t, "c1", 1); last != 42 {
			t.Fatalf("the repaired stream continues at %d, want 42", last)
		}
	})
}
