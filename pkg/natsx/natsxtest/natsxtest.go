// Package natsxtest gives tests what natter stands on: an embedded JetStream server on a random
// port with storage in the test's temporary directory, a connection, and natter's streams,
// buckets and consumers applied. Everything is torn down when the test ends.
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
	Server *server.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
}

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
	nc, err := natsx.Connect("", "test", srv, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsx.Apply(ctx, js, streams.Define(opts)); err != nil {
		t.Fatal(err)
	}
	return &Bus{Server: srv, NC: nc, JS: js}
}
