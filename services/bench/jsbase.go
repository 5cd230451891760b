package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/services/gateway"
	"github.com/natter-chat/natter/streams"
)

// Throughput is a raw baseline's (or a load phase's) rate.
type Throughput struct {
	What         string  `json:"what"`
	Clients      int     `json:"clients"`
	Window       int     `json:"window"`
	PayloadBytes int     `json:"payload_bytes"`
	Seconds      float64 `json:"seconds"`
	Count        uint64  `json:"count"`
	PerSec       float64 `json:"per_sec"`
	// Latency is publish -> ack (JetStream) or write -> echo (WebSocket) under this load.
	Latency        Latency `json:"latency"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUPer1000Msgs float64 `json:"cpu_s_per_1000_msgs"`
	// OtherCores: cores other processes kept busy meanwhile (noise; -1 unknown).
	OtherCores float64 `json:"other_cores"`
}

// RoundTrip is a one-at-a-time latency baseline.
type RoundTrip struct {
	What         string  `json:"what"`
	PayloadBytes int     `json:"payload_bytes"`
	PerSec       float64 `json:"per_sec"`
	Latency      Latency `json:"latency"`
}

// chatPayload is a CHAT event as the gateway would publish it for a text of size characters:
// the raw baseline publishes exactly this many bytes.
func chatPayload(size int, text string) ([]byte, error) {
	ev := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "d" + ulid.Make().String()[:25],
		MessageID: ulid.Make().String(), SenderID: ulid.Make().String(), SenderDevice: "bench0",
		ClientMsgID: "B1-a-1f-" + strconv.FormatInt(time.Now().UnixNano(), 16), Text: text, SentAt: time.Now().UnixMilli()}
	return ev.Encode()
}

// jsBaseline measures raw JetStream on this machine, the way natter uses it: an embedded
// nats-server, a file-storage stream configured like CHAT (same dedupe window), an in-process
// client connection, every message with a unique Nats-Msg-Id. First publishers async-publishers
// each keep window publishes outstanding (throughput), then the same with two durable consumers
// reading along (jsPipeline), then one publisher publishes synchronously (latency).
func jsBaseline(ctx context.Context, cfg Config, publishers int, payload []byte, log *zap.Logger) (*Throughput, *Throughput, *RoundTrip, error) {
	dir, err := os.MkdirTemp("", "natter-bench-js-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := natsx.StartServer(natsx.ServerConfig{Name: "bench-baseline", Dir: dir, Host: "127.0.0.1", Port: -1}, log)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := natsx.Connect("", "bench-baseline", srv, log)
	if err != nil {
		return nil, nil, nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(publishers*cfg.Window+16))
	if err != nil {
		return nil, nil, nil, err
	}
	sc := streams.Define(streams.DefaultOptions()).Streams[0]
	sc.Name, sc.Subjects, sc.Description = "BENCH", []string{"bench.>"}, "natter bench baseline"
	if _, err := js.CreateStream(ctx, sc); err != nil {
		return nil, nil, nil, fmt.Errorf("baseline stream: %w", err)
	}

	// Throughput: async publish, window per publisher.
	tp, err := asyncPublish(ctx, cfg, js, "JetStream async publish (embedded server, file stream like CHAT, in-process connection)", "bench", publishers, payload, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	pipe, err := jsPipeline(ctx, cfg, js, publishers, payload)
	if err != nil {
		return nil, nil, nil, err
	}

	// Latency: one synchronous publisher.
	var sh hist
	d := min(cfg.Duration, 2*time.Second)
	start := time.Now()
	var n uint64
	for time.Since(start) < d && ctx.Err() == nil {
		n++
		msg := &nats.Msg{Subject: "bench.sync.msg", Data: payload, Header: nats.Header{}}
		msg.Header.Set(streams.HeaderMsgID, "sync:"+strconv.FormatUint(n, 10))
		msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
		at := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.PublishMsg(pctx, msg)
		cancel()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("baseline sync publish: %w", err)
		}
		sh.record(time.Since(at))
	}
	rt := &RoundTrip{What: "JetStream synchronous publish, one publisher", PayloadBytes: len(payload),
		PerSec: float64(n) / time.Since(start).Seconds(), Latency: sh.summary()}
	return tp, pipe, rt, nil
}

// asyncPublish measures publishers async-publishers, each keeping cfg.Window publishes
// outstanding on the BENCH stream, for cfg.Duration after cfg.Warmup. Before each publish it calls
// wait (if set), which may hold the publisher back.
func asyncPublish(ctx context.Context, cfg Config, js jetstream.JetStream, what, prefix string, publishers int, payload []byte, wait func(context.Context)) (*Throughput, error) {
	var measuring atomic.Bool
	var count atomic.Uint64
	hists := make([]hist, publishers)
	stop := make(chan struct{})
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		goClient(&wg, func() {
			type pending struct {
				f  jetstream.PubAckFuture
				at time.Time
			}
			ring := make([]pending, 0, cfg.Window)
			subject := fmt.Sprintf("bench.c%d.msg", p/2)
			idPrefix := fmt.Sprintf("%s:%d:", prefix, p)
			var n uint64
			await := func(pd pending) bool {
				select {
				case <-pd.f.Ok():
				case err := <-pd.f.Err():
					errs <- err
					return false
				case <-time.After(30 * time.Second):
					errs <- fmt.Errorf("no publish ack within 30s")
					return false
				}
				if measuring.Load() {
					count.Add(1)
					hists[p].record(time.Since(pd.at))
				}
				return true
			}
			for {
				select {
				case <-stop:
					for _, pd := range ring {
						if !await(pd) {
							return
						}
					}
					return
				default:
				}
				if len(ring) == cfg.Window {
					if !await(ring[0]) {
						return
					}
					ring = append(ring[:0], ring[1:]...)
				}
				if wait != nil {
					wait(ctx)
				}
				n++
				msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{}}
				msg.Header.Set(streams.HeaderMsgID, idPrefix+strconv.FormatUint(n, 10))
				msg.Header.Set(streams.HeaderVersion, streams.VersionValue)
				at := time.Now()
				f, err := js.PublishMsgAsync(msg)
				if err != nil {
					errs <- err
					return
				}
				ring = append(ring, pending{f, at})
			}
		})
	}
	meter := cpuMeter{}
	sleep(ctx, cfg.Warmup)
	cpu0, _ := meter.read()
	cont := startContention(meter)
	t0 := time.Now()
	measuring.Store(true)
	sleep(ctx, cfg.Duration)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1, _ := meter.read()
	other := cont.otherCores(elapsed)
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, fmt.Errorf("%s: %w", what, err)
	default:
	}
	var h hist
	for i := range hists {
		h.merge(&hists[i])
	}
	tp := &Throughput{What: what, Clients: publishers, Window: cfg.Window, PayloadBytes: len(payload),
		Seconds: elapsed.Seconds(), Count: count.Load(), Latency: h.summary(), CPUSeconds: (cpu1 - cpu0).Seconds(), OtherCores: other}
	tp.PerSec = float64(tp.Count) / tp.Seconds
	if tp.Count > 0 {
		tp.CPUPer1000Msgs = tp.CPUSeconds / float64(tp.Count) * 1000
	}
	return tp, nil
}

// pipelineChunk is the most messages one pull asks for: fanout pulls 512 at a time, the persister 256.
const pipelineChunk = 512

// jsPipeline measures the durable floor of natter's pipeline: the async publishes of asyncPublish
// with two durable pull consumers (the persister's and fanout's shape: explicit acks, chunks of
// fanout's size) reading every message and acking it, and doing nothing else. Publishers wait
// while the slower consumer is more than the gateway's default MaxDeliveryLag behind, as natter's
// gateway does, so that publishing and consuming keep pace. Its CPU per message is what any
// message costs in natter before a store, a socket or a line of natter's own code touches it.
func jsPipeline(ctx context.Context, cfg Config, js jetstream.JetStream, publishers int, payload []byte) (*Throughput, error) {
	maxLag := int64(gateway.DefaultConfig().MaxDeliveryLag)
	var published atomic.Int64
	consumed := make([]atomic.Int64, 2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range consumed {
		cons, err := js.CreateOrUpdateConsumer(ctx, "BENCH", jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("pipeline%d", i), AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
			MaxAckPending: streams.FanoutMaxAckPending, AckWait: 30 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("baseline pipeline consumer: %w", err)
		}
		goClient(&wg, func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				batch, err := cons.Fetch(pipelineChunk, jetstream.FetchMaxWait(100*time.Millisecond))
				if err != nil {
					continue
				}
				for m := range batch.Messages() {
					_ = m.Ack()
					consumed[i].Add(1)
				}
			}
		})
	}
	wait := func(ctx context.Context) {
		for published.Load()-min(consumed[0].Load(), consumed[1].Load()) > maxLag && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		published.Add(1)
	}
	tp, err := asyncPublish(ctx, cfg, js, "JetStream pipeline: async publish + 2 durable pull consumers acking each message", "pipeline", publishers, payload, wait)
	close(stop)
	wg.Wait()
	return tp, err
}
