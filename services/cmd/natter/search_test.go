package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/services/search"
	"github.com/natter-chat/natter/streams"
)

func TestSearchStatusAndRebuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bus := natsxtest.Start(t)
	url := bus.Server.ClientURL()
	var out bytes.Buffer
	if err := searchRun("status", []string{"--nats-url", url, "--timeout", "1s"}, &out); err == nil {
		t.Fatal("status without a search process succeeded")
	}
	for i := range 50 {
		data, _ := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: "c", MessageID: fmt.Sprint(i), SenderID: "u", Text: "hello"}.Encode()
		if _, err := bus.JS.Publish(ctx, streams.ChatSubject("c", streams.KindMsg), data); err != nil {
			t.Fatal(err)
		}
	}
	met, _ := search.NewMetrics(nil)
	cfg := search.DefaultConfig()
	cfg.Dir = t.TempDir() + "/search"
	svc, err := search.New(cfg, search.Deps{Log: zap.NewNop(), JS: bus.JS, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := search.Serve(bus.NC, svc, cfg, zap.NewNop(), met)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Stop(ctx)
		_ = svc.Stop(ctx)
	}()
	if err := searchRun("rebuild", []string{"--nats-url", url}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "replaying CHAT seqs 1..50") || !strings.Contains(got, "100%") ||
		!strings.Contains(got, "indexed up to seq 50 of 50 (0 events pending), 50 messages in the index") {
		t.Fatalf("rebuild printed:\n%s", got)
	}
	out.Reset()
	if err := searchRun("status", []string{"--nats-url", url}, &out); err != nil || !strings.Contains(out.String(), "50 messages in the index") {
		t.Fatalf("status: %v\n%s", err, out.String())
	}
}
