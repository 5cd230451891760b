package bench

import (
	"bytes"
	"context"
	"errors"
	"runtime/pprof"
	"sync"
	"testing"
	"time"
)

// spinLabelled and spinPlain burn CPU for d each, on a goroutine with profiler labels and on
// one without: nats-server labels its goroutines, and their samples must count like any other.
//
//go:noinline
func spinLabelled(d time.Duration) int { return spin(d) }

//go:noinline
func spinPlain(d time.Duration) int { return spin(d) }

func spin(d time.Duration) int {
	n := 0
	for start := time.Now(); time.Since(start) < d; {
		for i := 0; i < 1000; i++ {
			n += i * i
		}
	}
	return n
}

func TestSortProfileCountsEverySample(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("a CPU profile is running already: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pprof.Do(context.Background(), pprof.Labels("stream", "CHAT"), func(context.Context) { spinLabelled(400 * time.Millisecond) })
	}()
	go func() { defer wg.Done(); spinPlain(400 * time.Millisecond) }()
	wg.Wait()
	pprof.StopCPUProfile()

	parts := []Part{{"labelled", []string{"bench.spinLabelled"}}, {"plain", []string{"bench.spinPlain"}}}
	shares, total, err := SortProfile(buf.Bytes(), parts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	var sum time.Duration
	for _, s := range shares {
		got[s.Name] = s.CPU
		sum += s.CPU
	}
	if sum != total || total <= 0 {
		t.Fatalf("parts sum to %s of %s", sum, total)
	}
	// Each spun for 400 ms of wall clock; on a busy machine it may get less CPU, never none.
	if got["labelled"] < 50*time.Millisecond || got["plain"] < 50*time.Millisecond {
		t.Fatalf("labelled %s, plain %s, of %s in all: a spinning goroutine's samples are missing", got["labelled"], got["plain"], total)
	}
}

func TestSortProfileTakesTheFirstPartInOrder(t *testing.T) {
	p := &profile{locations: map[uint64][]string{
		1: {"github.com/cockroachdb/pebble/v2.(*DB).Apply"},
		2: {"github.com/natter-chat/natter/services/persister.apply", "github.com/natter-chat/natter/pkg/consumer.(*Runner).one"},
		3: {"runtime.goexit"},
	}}
	if got := p.partOf([]uint64{1, 2, 3}, NatterParts); NatterParts[got].Name != "persister with Pebble" {
		t.Fatalf("a persister write into Pebble went to %q", NatterParts[got].Name)
	}
	if got := p.partOf([]uint64{3}, NatterParts); got != len(NatterParts) {
		t.Fatalf("a stack of no part went to %d", got)
	}
}

func TestSortProfileRejectsWhatIsNotACPUProfile(t *testing.T) {
	var heap bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&heap, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SortProfile(heap.Bytes(), NatterParts); !errors.Is(err, errNotCPUProfile) {
		t.Fatalf("a heap profile: %v", err)
	}
	for _, bad := range [][]byte{nil, {0x1f, 0x8b, 0}, {0x0a, 0xff}, []byte("not a profile")} {
		if _, _, err := SortProfile(bad, NatterParts); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzSortProfile(f *testing.F) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err == nil {
		spinPlain(20 * time.Millisecond)
		pprof.StopCPUProfile()
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0x0a, 0x04, 0x08, 0x01, 0x10, 0x02})
	// A CPU sample type ("cpu", "nanoseconds") and one sample of 2^63 ns: a value that overflows
	// a Duration must still be counted where the total counts it.
	f.Add([]byte{0x0a, 0x04, 0x08, 0x01, 0x10, 0x02, 0x12, 0x0c, 0x12, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
		0x32, 0x00, 0x32, 0x03, 'c', 'p', 'u', 0x32, 0x0b, 'n', 'a', 'n', 'o', 's', 'e', 'c', 'o', 'n', 'd', 's'})
	f.Fuzz(func(t *testing.T, data []byte) {
		shares, total, err := SortProfile(data, NatterParts)
		if err != nil {
			return
		}
		var sum time.Duration
		for _, s := range shares {
			sum += s.CPU
		}
		if sum != total {
			t.Fatalf("parts sum to %s of %s", sum, total)
		}
	})
}
