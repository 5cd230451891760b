package gateway

import (
	"fmt"
	"slices"
	"testing"
)

func TestLiveGateHoldsDuringCatchUpThenDropsWhatTheSocketHas(t *testing.T) {
	g := newLiveGate()
	if g.caughtUpTo(1) {
		t.Fatal("caught up before the head is known")
	}
	// Live events arrive while the catch-up runs: all held, whatever their seq.
	for _, seq := range []uint64{4, 9, 12, 11} {
		if send, full := g.offer("a", seq, []byte(fmt.Sprint(seq))); send || full {
			t.Fatalf("seq %d during catch-up: send %v full %v, want held", seq, send, full)
		}
	}
	g.setHead(10)
	if !g.caughtUpTo(10) || g.caughtUpTo(11) {
		t.Fatal("caughtUpTo: want through the head, not past it")
	}
	g.caughtUp("a", 7) // the catch-up sends 7 of a, then 3 of b
	g.caughtUp("b", 3)
	var sent []uint64
	late := true
	for held := g.takeHeld(); held != nil; held = g.takeHeld() {
		for _, p := range held {
			if g.admit(p) {
				sent = append(sent, p.seq)
			}
		}
		if late { // arrives while held frames are released: it waits its turn
			late = false
			if send, _ := g.offer("a", 13, nil); send {
				t.Fatal("a live event overtook the held ones")
			}
		}
	}
	if want := []uint64{12, 13}; !slices.Equal(sent, want) {
		t.Fatalf("released %v, want %v (at or below the head 10 the catch-up had; 11 after 12 is old)", sent, want)
	}
	// Open: fresh events go at once, repeats and old ones do not.
	for _, c := range []struct {
		conv string
		seq  uint64
		send bool
	}{{"a", 14, true}, {"a", 14, false}, {"a", 13, false}, {"b", 10, false}, {"b", 11, true}, {"c", 15, true}} {
		if send, full := g.offer(c.conv, c.seq, nil); send != c.send || full {
			t.Fatalf("%s/%d after catch-up: send %v full %v, want send %v", c.conv, c.seq, send, full, c.send)
		}
	}
}

func TestLiveGateOverflowsDuringCatchUp(t *testing.T) {
	g := newLiveGate()
	for i := range maxPending {
		if _, full := g.offer("a", uint64(i+1), nil); full {
			t.Fatalf("full after %d of %d", i, maxPending)
		}
	}
	if _, full := g.offer("a", maxPending+1, nil); !full {
		t.Fatal("one more than maxPending held")
	}
}
