package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/services/push"
	"github.com/natter-chat/natter/streams"
)

func TestPushWhy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
	srv := bus.Server
	ledger, err := push.OpenLedger(ctx, bus.JS)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []streams.PushLedgerEntry{
		{UserID: "bob", MessageID: "m1", ConversationID: "d1", DeviceID: "laptop", Outcome: streams.PushSkipped,
			Reason: streams.PushReasonOnline, Detail: "connected to gateway gw-1"},
		{UserID: "bob", MessageID: "m2", ConversationID: "d1", DeviceID: "phone", Outcome: streams.PushSkipped, Reason: streams.PushReasonMuted},
	} {
		if err := ledger.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := pushWhy([]string{"--nats-url", srv.ClientURL(), "--user", "bob", "--message", "m1"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "device laptop: no push: you were online (connected to gateway gw-1)") ||
		strings.Contains(out.String(), "muted") {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	if err := pushWhy([]string{"--nats-url", srv.ClientURL(), "--user", "bob", "--message", "m9"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no entries") {
		t.Fatalf("output:\n%s", out.String())
	}
	if err := pushWhy([]string{"--nats-url", srv.ClientURL(), "--user", "bob"}, &out); err == nil {
		t.Fatal("no --message accepted")
	}
	if err := pushWhy([]string{"--nats-url", srv.ClientURL(), "--user", "bob", "--message", "m.>"}, &out); err == nil {
		t.Fatal("a wildcard message id accepted")
	}
}
