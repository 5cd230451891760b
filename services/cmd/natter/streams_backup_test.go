package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx"
	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/streams"
)

// TestStreamSnapshotAndRestore: every stream of one NATS is snapshotted through JetStream's
// snapshot API and restored into another, empty one, with its messages and sequences.
func TestStreamSnapshotAndRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := natsxtest.Start(t)
	for i := range 3 {
		if _, err := src.JS.Publish(ctx, streams.ChatSubject("c1", streams.KindMsg), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	snaps, err := snapshotStreams(ctx, src.JS, src.NC, dir)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range snaps {
		if s.Stream == streams.ChatStream {
			found = s.Msgs == 3 && s.Last == 3
		}
	}
	if !found {
		t.Fatalf("snapshots %+v: no CHAT with 3 messages", snaps)
	}
	// A second NATS without natter's definitions: the restore creates the streams.
	srv, err := natsx.StartServer(natsx.ServerConfig{Dir: t.TempDir(), Port: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	var out bytes.Buffer
	if err := restoreStreams(ctx, srv.ClientURL(), "", dir, &out); err != nil {
		t.Fatal(err)
	}
	nc, err := natsx.Connect(srv.ClientURL(), "test", nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, streams.ChatStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 3)
	if err != nil || string(m.Data) != `{"n":2}` {
		t.Fatalf("restored CHAT seq 3 = %v %v", m, err)
	}
	if err := restoreStreams(ctx, srv.ClientURL(), "", dir, &out); err == nil {
		t.Fatal("a restore over existing streams succeeded")
	}
}
