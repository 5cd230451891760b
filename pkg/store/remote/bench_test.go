package remote

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/store/pebble/pebbletest"
)

// The benchmarks run the client against a server on its own TCP connection to an embedded
// nats-server (loopback), next to two baselines measured in the same run: the served Pebble
// store called directly, and a raw NATS request/reply echo of the same payload. Compare the
// ratios; the absolute figures are mostly the disk's fsync (inserts) and the machine.

type benchEnv struct {
	st     store.Store
	client *Client
	cliNC  *nats.Conn
	echo   string // subject of an echo responder on the server's connection
}

func newBenchEnv(b *testing.B) *benchEnv {
	bus := natsxtest.Start(b)
	srvNC, cliNC := connect(b, bus.Server), connect(b, bus.Server)
	st := pebbletest.Open(b)
	prefix := fmt.Sprintf("bench.store%d", prefixes.Add(1))
	serve(b, srvNC, st, ServerConfig{Prefix: prefix})
	sub, err := srvNC.Subscribe(prefix+"-echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := srvNC.Flush(); err != nil {
		b.Fatal(err)
	}
	return &benchEnv{st: st, client: dial(b, cliNC, ClientConfig{Prefix: prefix}), cliNC: cliNC, echo: prefix + "-echo"}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func benchMessage(seq uint64, text string) store.Message {
	return store.Message{ConversationID: fmt.Sprint("c", seq%16), Seq: seq, ID: fmt.Sprint(seq), Kind: "msg", SenderID: "u1",
		ClientMsgID: fmt.Sprint("k", seq), Text: text, SentAt: time.Now()}
}

func BenchmarkInsertMessage(b *testing.B) {
	text := strings.Repeat("x", 100)
	env := newBenchEnv(b)
	var next atomic.Uint64
	run := func(b *testing.B, s store.Store, parallel bool) {
		ctx := context.Background()
		if !parallel {
			for b.Loop() {
				if _, _, err := s.InsertMessage(ctx, benchMessage(next.Add(1), text)); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := s.InsertMessage(ctx, benchMessage(next.Add(1), text)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		reportRate(b)
	}
	b.Run("remote", func(b *testing.B) { run(b, env.client, false) })
	b.Run("remote-parallel", func(b *testing.B) { run(b, env.client, true) })
	b.Run("baseline=pebble", func(b *testing.B) { run(b, env.st, false) })
	b.Run("baseline=pebble-parallel", func(b *testing.B) { run(b, env.st, true) })
	req := encodeRequest(mInsertMessage, &request{msg: benchMessage(1, text), timeout: time.Second})
	b.Run("baseline=nats-echo", func(b *testing.B) { benchEcho(b, env, req, false) })
	b.Run("baseline=nats-echo-parallel", func(b *testing.B) { benchEcho(b, env, req, true) })
}

func BenchmarkMessagesPage50(b *testing.B) {
	text := strings.Repeat("x", 100)
	env := newBenchEnv(b)
	ctx := context.Background()
	for i := range 5000 {
		m := benchMessage(uint64(i+1), text)
		m.ConversationID = fmt.Sprint("c", i%4)
		if _, _, err := env.st.InsertMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	run := func(b *testing.B, s store.Store, parallel bool) {
		page := func() error {
			msgs, err := s.Messages(ctx, "c1", store.Page{Limit: 50})
			if err == nil && len(msgs) != 50 {
				err = fmt.Errorf("%d messages", len(msgs))
			}
			return err
		}
		if !parallel {
			for b.Loop() {
				if err := page(); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := page(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		reportRate(b)
	}
	b.Run("remote", func(b *testing.B) { run(b, env.client, false) })
	b.Run("remote-parallel", func(b *testing.B) { run(b, env.client, true) })
	b.Run("baseline=pebble", func(b *testing.B) { run(b, env.st, false) })
	b.Run("baseline=pebble-parallel", func(b *testing.B) { run(b, env.st, true) })
	msgs, err := env.st.Messages(ctx, "c1", store.Page{Limit: 50})
	if err != nil {
		b.Fatal(err)
	}
	reply := encodeResponse(mMessages, &response{msgs: msgs})
	b.Run("baseline=nats-echo", func(b *testing.B) { benchEcho(b, env, reply, false) })
	b.Run("baseline=nats-echo-parallel", func(b *testing.B) { benchEcho(b, env, reply, true) })
}

// benchEcho is a raw request/reply of payload on the same connections.
func benchEcho(b *testing.B, env *benchEnv, payload []byte, parallel bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !parallel {
		for b.Loop() {
			if _, err := env.cliNC.RequestWithContext(ctx, env.echo, payload); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := env.cliNC.RequestWithContext(ctx, env.echo, payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	reportRate(b)
}
