package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestKeyedLimiterMemoryIsBounded(t *testing.T) {
	t.Parallel()
	l := NewKeyed(Rate{N: 1, Per: time.Hour}, 100)
	for i := range 10_000 {
		if d := l.Wait(fmt.Sprintf("198.51.%d.%d", i/256, i%256), t0); d != 0 {
			t.Fatalf("first request of a new key waits %s", d)
		}
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d keys held, want the bound 100", n)
	}
	// Keys idle for a full refill are forgotten as new ones come, bound or not.
	l.Wait("late", t0.Add(time.Hour))
	if n := l.Len(); n != 1 {
		t.Fatalf("%d keys held after every other key idled for a refill, want 1", n)
	}
}

func TestKeyedLimiterRefills(t *testing.T) {
	t.Parallel()
	l := NewKeyed(Rate{N: 2, Per: time.Minute}, 10)
	for range 2 {
		if d := l.Wait("a", t0); d != 0 {
			t.Fatalf("within the burst: wait %s", d)
		}
	}
	if d := l.Wait("a", t0); d != 30*time.Second {
		t.Fatalf("over the burst: wait %s, want 30s", d)
	}
	if d := l.Wait("a", t0); d != 30*time.Second {
		t.Fatalf("a refused request took a token: wait %s, want 30s", d)
	}
	if d := l.Wait("a", t0.Add(30*time.Second)); d != 0 {
		t.Fatalf("after a refill: wait %s", d)
	}
	if d := NewKeyed(Off, 10).Wait("a", t0); d != 0 {
		t.Fatalf("an Off limiter waits %s", d)
	}
}

func TestFailureLimiterWindow(t *testing.T) {
	t.Parallel()
	f := NewFailures(2, time.Minute, 10)
	f.Begin("h", t0)
	f.Begin("h", t0.Add(10*time.Second))
	if d := f.Begin("h", t0.Add(15*time.Second)); d != 45*time.Second {
		t.Fatalf("third attempt: refused for %s, want 45s (the window's rest)", d)
	}
	f.Undo("h") // an attempt that never checked a password
	if d := f.Begin("h", t0.Add(15*time.Second)); d != 0 {
		t.Fatalf("after an undo: refused for %s", d)
	}
	if d := f.Begin("h", t0.Add(time.Minute)); d != 0 {
		t.Fatalf("a new window: refused for %s", d)
	}
	f.Begin("h", t0.Add(time.Minute))
	f.Succeeded("h")
	if d := f.Begin("h", t0.Add(time.Minute)); d != 0 {
		t.Fatalf("after a success: refused for %s", d)
	}
	for i := range 1000 {
		f.Begin(fmt.Sprint("k", i), t0.Add(time.Minute))
	}
	if n := f.Len(); n != 10 {
		t.Fatalf("%d handles held, want the bound 10", n)
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Rate{
		"30/1h": {30, time.Hour}, "300/1m": {300, time.Minute}, "5/1m30s": {5, 90 * time.Second}, "2/1h30m": {2, 90 * time.Minute}, "off": Off,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, in := range []string{"", "30", "0/1m", "-1/1m", "x/1m", "5/0s", "5/-1m", "5/soon"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) succeeded", in)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", 90 * time.Second: "90", 0: "1"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%s) = %s, want %s", d, got, want)
		}
	}
}
