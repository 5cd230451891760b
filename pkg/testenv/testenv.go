// Package testenv is what the tests of natter's components stand on: a context bounded by the
// test, and an embedded JetStream server (port -1, storage in the test's temporary directory)
// with natter's streams, buckets and consumers applied and a connection to it (natsxtest). The
// store is pebbletest.Open. Everything is torn down when the test ends. Only tests import it.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

// Timeout bounds the context of an Env: a safety net for calls that would otherwise hang a test
// until go test's own timeout, not a limit any test is meant to reach.
const Timeout = 60 * time.Second

// Env is a running embedded JetStream with natter's definitions.
type Env struct {
	// Ctx is canceled when the test ends, and after Timeout at the latest.
	Ctx context.Context
	*natsxtest.Bus
}

// Start starts an Env with streams.DefaultOptions.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, streams.DefaultOptions())
}

// StartWith starts an Env whose definitions follow opts (short TTLs, more partitions, ...).
func StartWith(t testing.TB, opts streams.Options) *Env {
	t.Helper()
	return &Env{Ctx: Context(t), Bus: natsxtest.StartWith(t, opts)}
}

// Context returns a context canceled when the test ends, and after Timeout at the latest.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Stream returns one of natter's streams (streams.ChatStream, ...), failing the test if it is
// not there.
func (e *Env) Stream(t testing.TB, name string) jetstream.Stream {
	t.Helper()
	st, err := e.JS.Stream(e.Ctx, name)
	if err != nil {
		t.Fatalf("testenv: stream %s: %v", name, err)
	}
	return st
}

// KeyValue returns one of natter's buckets (streams.RoutesBucket, ...), failing the test if it
// is not there.
func (e *Env) KeyValue(t testing.TB, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := e.JS.KeyValue(e.Ctx, bucket)
	if err != nil {
		t.Fatalf("testenv: bucket %s: %v", bucket, err)
	}
	return kv
}
