package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/natsx/natsxtest"
	"github.com/natter-chat/natter/services/search/wire"
	"github.com/natter-chat/natter/streams"
)

// BenchmarkSearch is make bench-search: SEARCH_BENCH_N messages (default 1,000,000) in 10,000
// conversations are published to CHAT on an embedded NATS server, the search service indexes
// them through its durable consumer (the real path: pull, decode, Bleve batch, ack), and then
// SEARCH_BENCH_QUERIES queries (default 2,000) of one or two words, each in the scopes of a user
// in 50 conversations, run against the index, in the process and through NATS as the API asks.
// It reports index throughput and query latency percentiles. Run it alone: the machine's other
// work shows in every figure.
func BenchmarkSearch(b *testing.B) {
	n := envInt(b, "SEARCH_BENCH_N", 1_000_000)
	queries := envInt(b, "SEARCH_BENCH_QUERIES", 2_000)
	const convs = 10_000
	ctx := context.Background()
	bus := natsxtest.Start(b)
	rng := rand.New(rand.NewPCG(1, 2))
	words := vocabulary(rng)

	start := time.Now()
	var last uint64
	pending := make([]jetstream.PubAckFuture, 0, 2048) // below the library's 4,000 in flight
	for i := range n {
		conv := fmt.Sprintf("c%05d", rng.IntN(convs))
		data, err := streams.ChatEvent{Kind: streams.KindMsg, ConversationID: conv, MessageID: fmt.Sprintf("m%09d", i),
			SenderID: "u1", Text: sentence(rng, words), SentAt: time.Now().UnixMilli()}.Encode()
		if err != nil {
			b.Fatal(err)
		}
		f, err := bus.JS.PublishAsync(streams.ChatSubject(conv, streams.KindMsg), data)
		if err != nil {
			b.Fatal(err)
		}
		if pending = append(pending, f); len(pending) == cap(pending) || i == n-1 {
			for _, f := range pending {
				select {
				case ack := <-f.Ok():
					last = max(last, ack.Sequence)
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			pending = pending[:0]
		}
	}
	b.Logf("published %d messages in %s", n, time.Since(start).Round(time.Millisecond))

	met, _ := NewMetrics(nil)
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir() + "/index"
	svc, err := New(cfg, Deps{Log: zap.NewNop(), JS: bus.JS, Metrics: met})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start = time.Now()
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	srv, err := Serve(bus.NC, svc, cfg, zap.NewNop(), met)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = srv.Stop(ctx)
		_ = svc.Stop(ctx)
	}()
	for {
		st, err := svc.Status(ctx)
		if err == nil && st.IndexedSeq >= last && st.Pending == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	docs, _ := svc.Index().Count()
	b.Logf("indexed %d messages in %s: %.0f messages/s", docs, took.Round(time.Millisecond), float64(docs)/took.Seconds())
	b.ReportMetric(float64(docs)/took.Seconds(), "indexed/s")

	client := wire.NewClient(bus.NC, 10*time.Second)
	for _, via := range []string{"in-process", "nats"} {
		lat := make([]time.Duration, 0, queries)
		hits := 0
		for range queries {
			q := wire.Query{Text: words[rng.IntN(200)], Limit: wire.DefaultLimit}
			if rng.IntN(2) == 0 {
				q.Text += " " + words[rng.IntN(len(words))]
			}
			for range 50 {
				q.Scopes = append(q.Scopes, wire.Scope{ConversationID: fmt.Sprintf("c%05d", rng.IntN(convs))})
			}
			t0 := time.Now()
			var res wire.Result
			if via == "nats" {
				res, err = client.Search(ctx, q)
			} else {
				res, err = svc.Index().Search(ctx, q)
			}
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			hits += len(res.Hits)
		}
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
		b.Logf("%d queries %s: p50 %s p90 %s p99 %s max %s (%.1f hits each)", queries, via,
			p(0.5).Round(time.Microsecond), p(0.9).Round(time.Microsecond), p(0.99).Round(time.Microsecond),
			lat[len(lat)-1].Round(time.Microsecond), float64(hits)/float64(queries))
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms-"+via)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// vocabulary is 5,000 made-up English-like words and some Korean ones; sentence draws from it
// with a skew, so that a few words are common and most are rare, as in real text.
func vocabulary(rng *rand.Rand) []string {
	syll := []string{"ka", "lo", "mi", "ren", "ta", "so", "vel", "dor", "pa", "qui", "ster", "ban"}
	korean := []string{"안녕하세요", "감사합니다", "내일", "회의", "점심", "사진", "주말", "여행"}
	words := make([]string, 0, 5000)
	for len(words) < 5000 {
		if len(words)%50 == 0 {
			words = append(words, korean[rng.IntN(len(korean))]+syll[rng.IntN(len(syll))])
			continue
		}
		var w strings.Builder
		for range 2 + rng.IntN(2) {
			w.WriteString(syll[rng.IntN(len(syll))])
		}
		words = append(words, w.String())
	}
	return words
}

func sentence(rng *rand.Rand, words []string) string {
	var s strings.Builder
	for i := range 6 + rng.IntN(8) {
		if i > 0 {
			s.WriteByte(' ')
		}
		// Skewed: the square of a uniform number favours the first words.
		f := rng.Float64()
		s.WriteString(words[int(f*f*float64(len(words)))])
	}
	return s.String()
}
