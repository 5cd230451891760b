package persister

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/cputime"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
	"github.com/natter-chat/natter/streams"
)

// BenchmarkCatchUp: the persister (sole, on Pebble) takes b.N messages of 100 characters in 100
// conversations that wait in CHAT, as after a restart or behind a flat-out load. ns/op is the
// wall time per message; cpu-µs/msg is the process's CPU per message (the embedded nats-server's
// deliveries included), the figure a change of the persister's write path moves.
func BenchmarkCatchUp(b *testing.B) {
	bus := natsxtest.Start(b)
	st := pebbletest.Open(b)
	js := bus.JS
	text := strings.Repeat("x", 100)
	for i := range b.N {
		c := i % 100
		ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: fmt.Sprintf("d:01JBENCHUSER%04d:01JBENCHUSER%04d", c, c+100),
			MessageID: fmt.Sprintf("01JBENCHMESSAGE%011d", i), SenderID: fmt.Sprintf("01JBENCHUSER%04d", c), SenderDevice: "d1",
			ClientMsgID: fmt.Sprintf("bench-%d", i), Text: text, SentAt: 1_700_000_000_000 + int64(i)}
		data, err := ev.Encode()
		if err != nil {
			b.Fatal(err)
		}
		msg := nats.NewMsg(streams.ChatSubject(ev.ConversationID, streams.KindMsg))
		msg.Data = data
		msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
		if _, err := js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing timed out")
	}
	info, err := bus.Stream(b, streams.ChatStream).Info(bus.Ctx)
	if err != nil {
		b.Fatal(err)
	}
	last := info.State.LastSeq
	cons, err := js.Consumer(bus.Ctx, streams.ChatStream, streams.PersisterConsumer)
	if err != nil {
		b.Fatal(err)
	}

	cpu0 := ownCPU(b)
	b.ResetTimer()
	p, err := New(DefaultConfig(), Deps{Log: zap.NewNop(), JS: js, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(bus.Ctx); err != nil {
		b.Fatal(err)
	}
	for {
		ci, err := cons.Info(bus.Ctx)
		if err != nil {
			b.Fatal(err)
		}
		if ci.AckFloor.Stream >= last {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64((ownCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	if err := p.Stop(bus.Ctx); err != nil {
		b.Fatal(err)
	}
}

// ownCPU is the CPU this process has used (cputime.Own).
func ownCPU(b *testing.B) time.Duration {
	d, err := cputime.Own()
	if err != nil {
		b.Fatal(err)
	}
	return d
}
