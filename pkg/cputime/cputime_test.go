package cputime

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	idle, total, err := parseStat("cpu  3917966 2672 1498171 3215762 70364 0 152306 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (3215762 + 70364) * ClockTick; idle != want {
		t.Errorf("idle %s, want %s", idle, want)
	}
	if want := (3917966 + 2672 + 1498171 + 3215762 + 70364 + 152306) * ClockTick; total != want {
		t.Errorf("total %s, want %s", total, want)
	}
	for _, bad := range []string{"", "cpu 1 2 3", "intr 1 2 3 4 5 6 7 8 9", "cpu 1 2 3 x 5 6 7 8", "cpu -1 2 3 4 5 6 7 8"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("cpu  3917966 2672 1498171 3215762 70364 0 152306 0 0 0\n")
	f.Add("cpu 1 2 3 4 5 6 7 8")
	f.Fuzz(func(t *testing.T, s string) {
		idle, total, err := parseStat(s)
		if err == nil && (idle < 0 || total < 0) {
			t.Fatalf("%q: idle %s, total %s", s, idle, total)
		}
	})
}

func TestRead(t *testing.T) {
	a, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	spin := 0
	for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); { // burn some CPU
		spin++
	}
	b, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if b.Own <= a.Own || !b.At.After(a.At) {
		t.Fatalf("own CPU %s then %s after %d turns of a busy loop", a.Own, b.Own, spin)
	}
	if a.Total > 0 && (b.Total < a.Total || b.Idle < a.Idle || b.Idle > b.Total) {
		t.Fatalf("machine: %+v then %+v", a, b)
	}
}

func TestBusy(t *testing.T) {
	if got := (Usage{Idle: 3 * time.Second, Total: 8 * time.Second}).Busy(); got != 5*time.Second {
		t.Fatalf("busy %s, want 5s", got)
	}
}
