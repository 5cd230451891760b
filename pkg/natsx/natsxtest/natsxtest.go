// Package natsxtest gives tests what natter stands on: an embedded JetStream server on a random
// port with storage in the test's temporary directory, a connection, natter's streams, buckets
// and consumers applied, and a context bounded by the test. Everything is torn down when the
// test ends. The store is pebbletest.Open. Only tests import it.
package natsxtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/streams"
)

// Bus is a running embedded NATS with natter's definitions.
type Bus struct {
	// Ctx is canceled when the test ends, and after Timeout at the latest.
	Ctx    context.Context
	Server *server.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
}

// Timeout bounds a Bus's Ctx: a safety net for calls that would otherwise hang a test until go
// test's own timeout, not a limit any test is meant to reach.
const Timeout = 60 * time.Second

// Start starts the server, connects and applies streams.Define(streams.DefaultOptions()).
func Start(t testing.TB) *Bus {
	t.Helper()
	return StartWith(t, streams.DefaultOptions())
}

// StartWith is Start with other stream options (short TTLs, say).
func StartWith(t testing.TB, opts streams.Options) *Bus {
	t.Helper()
	log := zap.NewNop()
	srv, err := natsx.StartServer(natsx.ServerConfig{Dir: t.TempDir(), Port: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, js := Dial(t, "", "test", srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsx.Apply(ctx, js, streams.Define(opts)); err != nil {
		t.Fatal(err)
	}
	return &Bus{Ctx: Context(t), Server: srv, NC: nc, JS: js}
}

// Dial connects as name to url, or to srv in-process when url is empty (natsx.Connect), for the
// rest of the test, and returns the connection with its JetStream context.
func Dial(t testing.TB, url, name string, srv *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := natsx.Connect(url, name, srv, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Context returns a context canceled when the test ends, and after Timeout at the latest.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Stream returns one of natter's streams (streams.ChatStream, ...), failing the test if it is
// not there.
func (b *Bus) Stream(t testing.TB, name string) jetstream.Stream {
	t.Helper()
	st, err := b.JS.Stream(b.Ctx, name)
	if err != nil {
		t.Fatalf("natsxtest: stream %s: %v", name, err)
	}
	return st
}

// KeyValue returns one of natter's buckets (streams.RoutesBucket, ...), failing the test if it
// is not there.
func (b *Bus) KeyValue(t testing.TB, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := b.JS.KeyValue(b.Ctx, bucket)
	if err != nil {
		t.Fatalf("natsxtest: bucket %s: %v", bucket, err)
	}
	return kv
}

// PullAndDie is a puller of the durable consumer on stream that is delivered n messages and
// dies without acknowledging them, as a crashed instance would: its own connection to srv
// pulls (with opts: a priority group, say) and closes. The messages stay pending until the
// consumer's ack wait, or until a reset. It fails the test unless all n were delivered.
func PullAndDie(t testing.TB, srv *server.Server, stream, consumer string, n int, opts ...jetstream.FetchOpt) {
	t.Helper()
	nc, js := Dial(t, "", "dies", srv)
	defer nc.Close() // the puller dies here, not when the test ends
	cons, err := js.Consumer(Context(t), stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, append([]jetstream.FetchOpt{jetstream.FetchMaxWait(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range batch.Messages() {
		held++
	}
	if held != n {
		t.Fatalf("%s/%s: a dying puller was delivered %d messages, want %d", stream, consumer, held, n)
	}
}

// Steal takes deliveries of the durable consumer on stream away from its puller and drops them
// unacknowledged, as a pull that gave up on what the server had sent does: on a connection of
// its own (Dial's url and srv) it calls more, which is to publish, then pulls a message at a
// time, until it holds n. It returns their stream seqs. It gets messages only while the puller
// has no pull waiting (between small chunks, in a pause), and fails the test after 20 s.
func Steal(t testing.TB, url string, srv *server.Server, stream, consumer string, n int, more func()) []uint64 {
	t.Helper()
	nc, js := Dial(t, url, "thief", srv)
	defer nc.Close()
	cons, err := js.Consumer(Context(t), stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	var stolen []uint64
	deadline := time.Now().Add(20 * time.Second)
	for len(stolen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: stole %v in 20s, want %d messages", stream, consumer, stolen, n)
		}
		more()
		for range 10 {
			batch, err := cons.FetchNoWait(1)
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				meta, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				stolen = append(stolen, meta.Sequence.Stream)
			}
		}
	}
	return stolen
}
