package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/cputime"
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

// BenchmarkIndexFormats is the CPU that indexing costs per message, format 1 (seq an indexed
// number) and format 2 (seq in the document id) against the current format (no term vectors,
// one stored field for id, sender and time), in alternating runs of one process: each run
// indexes SEARCH_BENCH_FORMAT_N messages (default 20,000, in 10,000
// conversations) through Apply in batches of 2,048 into a new index and closes it, and its CPU
// is the process's (user + system, getrusage) over the run. SEARCH_BENCH_PAIRS rounds (default
// 3) of the three, the order reversed every round. Run it alone:
//
//	go test ./services/search -run '^$' -bench IndexFormats -benchtime 1x
func BenchmarkIndexFormats(b *testing.B) {
	n := envInt(b, "SEARCH_BENCH_FORMAT_N", 20_000)
	pairs := envInt(b, "SEARCH_BENCH_PAIRS", 3)
	rng := rand.New(rand.NewPCG(1, 2))
	words := vocabulary(rng)
	docs := make([]Doc, n)
	for i := range docs {
		docs[i] = Doc{ConversationID: fmt.Sprintf("c%05d", rng.IntN(10_000)), Seq: uint64(1_000_000 + i), MessageID: fmt.Sprintf("m%09d", i),
			SenderID: "u1", SentAt: 1_700_000_000_000 + int64(i), Text: sentence(rng, words)}
	}
	run := map[string]func(dir string) error{
		"format1": func(dir string) error { return writeOlderIndex(dir, 1, docs) },
		"format2": func(dir string) error { return writeOlderIndex(dir, 2, docs) },
		"current": func(dir string) error {
			idx, err := OpenBleve(dir)
			if err != nil {
				return err
			}
			for chunk := range slices.Chunk(docs, 2048) {
				if err := idx.Apply(context.Background(), chunk, nil); err != nil {
					return err
				}
			}
			return idx.Close()
		},
	}
	perK := map[string][]float64{}
	for range b.N {
		for p := range pairs {
			order := []string{"format1", "format2", "current"}
			if p%2 == 1 {
				slices.Reverse(order)
			}
			for _, format := range order {
				runtime.GC()
				c0 := cpuSeconds(b)
				if err := run[format](b.TempDir() + "/index"); err != nil {
					b.Fatal(err)
				}
				perK[format] = append(perK[format], (cpuSeconds(b)-c0)/float64(n)*1000)
			}
		}
	}
	ratio := func(of string) []float64 {
		r := make([]float64, len(perK["current"]))
		for i := range r {
			r[i] = perK["current"][i] / perK[of][i]
		}
		slices.Sort(r)
		return r
	}
	for _, format := range []string{"format1", "format2", "current"} {
		v := perK[format]
		slices.Sort(v)
		b.Logf("%s: %.3f (%.3f-%.3f) CPU s per 1000 messages, %d runs of %d", format, v[len(v)/2], v[0], v[len(v)-1], len(v), n)
		b.ReportMetric(v[len(v)/2], "cpu-s/1000-"+format)
	}
	for _, of := range []string{"format1", "format2"} {
		r := ratio(of)
		b.Logf("current / %s, round by round: %.2f (%.2f-%.2f)", of, r[len(r)/2], r[0], r[len(r)-1])
	}
}

// cpuSeconds is the CPU time the process has used, user and system.
func cpuSeconds(b *testing.B) float64 {
	d, err := cputime.Own()
	if err != nil {
		b.Fatal(err)
	}
	return d.Seconds()
}

// BenchmarkQueryFormats is query latency, format 1 against the current format, on the same
// SEARCH_BENCH_QUERY_N messages (default 100,000): half of them in one long group, the rest in
// 1,000 other conversations. SEARCH_BENCH_QUERIES queries (default 500) of one or two common
// words, each asked of both indexes in turn (the order swapped every query) by a member of the
// group who joined late (after 90 % of its messages: the current format visits, and drops,
// every earlier match) and by one who joined at its start, each also in 20 other conversations.
// Both indexes must give the same first page. Run it alone:
//
//	go test ./services/search -run '^$' -bench QueryFormats -benchtime 1x
func BenchmarkQueryFormats(b *testing.B) {
	n := envInt(b, "SEARCH_BENCH_QUERY_N", 100_000)
	queries := envInt(b, "SEARCH_BENCH_QUERIES", 500)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	words := vocabulary(rng)
	docs := make([]Doc, n)
	var lateSeq uint64
	for i := range docs {
		conv := "long"
		if i%2 == 1 {
			conv = fmt.Sprintf("c%04d", rng.IntN(1000))
		}
		docs[i] = Doc{ConversationID: conv, Seq: uint64(2 + i), MessageID: fmt.Sprintf("m%09d", i),
			SenderID: "u1", SentAt: 1_700_000_000_000 + int64(i), Text: sentence(rng, words)}
		if i == n*9/10 {
			lateSeq = docs[i].Seq
		}
	}
	old, err := newFormat1(b.TempDir() + "/format1")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = old.Close() }()
	cur, err := OpenBleve(b.TempDir() + "/current")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cur.Close() }()
	for chunk := range slices.Chunk(docs, 2048) {
		if err := applyFormat1(old, chunk); err != nil {
			b.Fatal(err)
		}
		if err := cur.Apply(ctx, chunk, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	lat := map[string][]time.Duration{}
	for range b.N {
		for i := range queries {
			text := words[rng.IntN(200)]
			if rng.IntN(2) == 0 {
				text += " " + words[rng.IntN(len(words))]
			}
			var others []wire.Scope
			for range 20 {
				others = append(others, wire.Scope{ConversationID: fmt.Sprintf("c%04d", rng.IntN(1000)), After: 1})
			}
			for _, member := range []string{"late", "early"} {
				q := wire.Query{Text: text, Limit: wire.DefaultLimit, Scopes: append([]wire.Scope{{ConversationID: "long", After: 1}}, others...)}
				if member == "late" {
					q.Scopes[0].After = lateSeq
				}
				var pages [2][]uint64
				order := []int{0, 1}
				if i%2 == 1 {
					slices.Reverse(order)
				}
				for _, f := range order {
					t0 := time.Now()
					if f == 0 {
						pages[f], err = searchFormat1(ctx, old, q)
					} else {
						var res wire.Result
						res, err = cur.Search(ctx, q)
						pages[f] = hitSeqs(res.Hits)
					}
					if err != nil {
						b.Fatal(err)
					}
					name := member + "-" + []string{"format1", "current"}[f]
					lat[name] = append(lat[name], time.Since(t0))
				}
				if !slices.Equal(pages[0], pages[1]) {
					b.Fatalf("%s member, %q: format 1 found %v, current %v", member, text, pages[0], pages[1])
				}
			}
		}
	}
	for _, name := range []string{"late-format1", "late-current", "early-format1", "early-current"} {
		v := lat[name]
		slices.Sort(v)
		p := func(q float64) time.Duration { return v[int(q*float64(len(v)-1))].Round(time.Microsecond) }
		b.Logf("%s: p50 %s p90 %s p99 %s max %s (%d queries on %d messages)", name, p(0.5), p(0.9), p(0.99), v[len(v)-1].Round(time.Microsecond), len(v), n)
		b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms-"+name)
	}
}

// BenchmarkMigrate is what opening an index of format 1 and one of format 2, each of
// SEARCH_BENCH_FORMAT_N messages (default 20,000), costs: Migrate reads every document back and
// writes it in the current format. Run it alone:
//
//	go test ./services/search -run '^$' -bench Migrate -benchtime 1x
func BenchmarkMigrate(b *testing.B) {
	n := envInt(b, "SEARCH_BENCH_FORMAT_N", 20_000)
	rng := rand.New(rand.NewPCG(5, 6))
	words := vocabulary(rng)
	docs := make([]Doc, n)
	for i := range docs {
		docs[i] = Doc{ConversationID: fmt.Sprintf("c%05d", rng.IntN(10_000)), Seq: uint64(1 + i), MessageID: fmt.Sprintf("m%09d", i),
			SenderID: "u1", SentAt: 1_700_000_000_000 + int64(i), Text: sentence(rng, words)}
	}
	for range b.N {
		for _, format := range []int{1, 2} {
			b.StopTimer()
			dir := b.TempDir() + "/index"
			if err := writeOlderIndex(dir, format, docs); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.StartTimer()
			c0, t0 := cpuSeconds(b), time.Now()
			idx, err := openBleve(dir)
			if err != nil {
				b.Fatal(err)
			}
			migrated, err := idx.Migrate(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			cpu, took := cpuSeconds(b)-c0, time.Since(t0)
			if migrated != uint64(n) {
				b.Fatalf("format %d: migrated %d of %d", format, migrated, n)
			}
			_ = idx.Close()
			b.Logf("format %d: migrated %d documents in %s: %.3f CPU s per 1000", format, n, took.Round(time.Millisecond), cpu/float64(n)*1000)
			b.ReportMetric(cpu/float64(n)*1000, fmt.Sprintf("cpu-s/1000-format%d", format))
		}
	}
}

// BenchmarkIndexingAnalyzer is the analysis of a message's text alone, in µs a message: the
// mapping's chain against the one indexing runs (indexingAnalyzer), alternately over the same
// SEARCH_BENCH_FORMAT_N messages (default 20,000), SEARCH_BENCH_PAIRS rounds (default 3).
//
//	go test ./services/search -run '^$' -bench IndexingAnalyzer -benchtime 1x
func BenchmarkIndexingAnalyzer(b *testing.B) {
	n := envInt(b, "SEARCH_BENCH_FORMAT_N", 20_000)
	pairs := envInt(b, "SEARCH_BENCH_PAIRS", 3)
	rng := rand.New(rand.NewPCG(1, 2))
	words := vocabulary(rng)
	texts := make([][]byte, n)
	for i := range texts {
		texts[i] = []byte(sentence(rng, words))
	}
	slow := mappingsTextAnalyzer(b)
	each := map[string]analysis.Analyzer{"mapping": slow, "indexing": indexingAnalyzer(slow)}
	us := map[string][]float64{}
	for range b.N {
		for p := range pairs {
			order := []string{"mapping", "indexing"}
			if p%2 == 1 {
				slices.Reverse(order)
			}
			for _, name := range order {
				start := time.Now()
				for _, text := range texts {
					each[name].Analyze(text)
				}
				us[name] = append(us[name], float64(time.Since(start).Microseconds())/float64(n))
			}
		}
	}
	for _, name := range []string{"mapping", "indexing"} {
		v := us[name]
		slices.Sort(v)
		b.Logf("%s: %.2f (%.2f-%.2f) µs a message, %d runs of %d", name, v[len(v)/2], v[0], v[len(v)-1], len(v), n)
		b.ReportMetric(v[len(v)/2], "µs/msg-"+name)
	}
}
