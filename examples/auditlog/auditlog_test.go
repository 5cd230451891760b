package auditlog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/consumer"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natsxtest.IgnoreServerGoroutines()...) }

// TestTheLogHasEveryEventOnceInOrder runs the audit consumer against a real JetStream with
// natter's streams, through everything a consumer meets: a stop and a restart, a crash between
// the fsync and the ack (the chunk comes again), and a last line cut short by a crash. At the end
// the file has every message and membership event exactly once, in stream order, and nothing
// else.
func TestTheLogHasEveryEventOnceInOrder(t *testing.T) {
	bus := natsxtest.Start(t)
	ctx := context.Background()
	var want []uint64
	publish := func(n int) {
		t.Helper()
		for i := range n {
			kind := streams.KindMsg
			ev := streams.ChatEvent{Kind: kind, ConversationID: "c1", MessageID: fmt.Sprintf("m%d", len(want)), SenderID: "alice", Text: "hi", SentAt: 1}
			switch i % 10 {
			case 3: // a receipt: not audited
				kind, ev = streams.KindRead, streams.ChatEvent{Kind: streams.KindRead, ConversationID: "c1", SenderID: "bob", UpTo: 1}
			case 7:
				kind = streams.KindMember
				ev.Kind, ev.Member = kind, &streams.MemberChange{Action: "add", UserIDs: []string{"carol"}}
			}
			data, err := ev.Encode()
			if err != nil {
				t.Fatal(err)
			}
			ack, err := bus.JS.Publish(ctx, streams.ChatSubject("c1", kind), data)
			if err != nil {
				t.Fatal(err)
			}
			if kind != streams.KindRead {
				want = append(want, ack.Sequence)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	// run consumes until the log has the last wanted seq, with flush as the chunk's flush hook.
	run := func() {
		t.Helper()
		log, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		cons, err := bus.JS.CreateOrUpdateConsumer(ctx, streams.ChatStream, Consumer("audit"))
		if err != nil {
			t.Fatal(err)
		}
		runner, err := consumer.Start(bus.JS, cons, consumer.Config{Name: "audit", Workers: 1, RetryInPlace: true},
			log.Handle, consumer.Hooks{Flush: log.Sync}, zap.NewNop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for log.Last() != want[len(want)-1] {
			if time.Now().After(deadline) {
				t.Fatalf("the log reached seq %d, want %d", log.Last(), want[len(want)-1])
			}
			time.Sleep(10 * time.Millisecond)
		}
		stop, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := runner.Stop(stop); err != nil {
			t.Fatal(err)
		}
	}

	publish(30)
	run()
	publish(30) // while stopped: the durable consumer resumes after its last ack

	// A crash after the lines reached the disk, before the acks: a process fetches a chunk,
	// writes and syncs it, and never acks. The chunk comes again (nak'd here, so that the test
	// need not wait out the ack wait) and must not be written twice.
	log, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := bus.JS.CreateOrUpdateConsumer(ctx, streams.ChatStream, Consumer("audit"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(15, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var fetched []jetstream.Msg
	for m := range batch.Messages() {
		if err := log.Handle(ctx, m); err != nil {
			t.Fatal(err)
		}
		fetched = append(fetched, m)
	}
	if len(fetched) == 0 {
		t.Fatal("nothing fetched")
	}
	if err := log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	for _, m := range fetched {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	run()

	// A crash in the middle of writing a line: the half line is dropped when the log opens.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":999999,"conversation_id":"c1","ki`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if log, err = Open(path); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readSeqs(t, path); !slices.Equal(got, want) { // the half line is gone
		t.Fatalf("after a reopen the log has seqs\n%v\nwant\n%v", got, want)
	}
	publish(20)
	run()

	if got := readSeqs(t, path); !slices.Equal(got, want) {
		t.Fatalf("the log has seqs\n%v\nwant each of these once, in order\n%v", got, want)
	}
}

func readSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seqs []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seqs = append(seqs, l.Seq)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs
}
