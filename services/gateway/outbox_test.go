package gateway

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func newOutbox(l outboxLimits) (*outbox, *sync.WaitGroup) {
	var wg sync.WaitGroup
	return &outbox{limits: &l, wg: &wg}, &wg
}

func frame(i int) []byte { return fmt.Appendf(nil, "f%d", i) }

// TestOutboxStartsOneWriterAtATime: push asks for a writer only when none runs, and each one it
// asks for is counted before the caller starts it; close asks for one only if none runs.
func TestOutboxStartsOneWriterAtATime(t *testing.T) {
	o, wg := newOutbox(outboxLimits{soft: 16, hard: 32})
	now := time.Now()
	if start, _ := o.push(frame(0)); !start {
		t.Fatal("the first push starts no writer")
	}
	if start, _ := o.push(frame(1)); start {
		t.Fatal("a second writer was asked for while one runs")
	}
	if tr := o.take(true, now); len(tr.frames) != 2 {
		t.Fatalf("turn %+v, want both frames", tr)
	}
	if start, _ := o.push(frame(2)); start {
		t.Fatal("a writer was asked for while the running one writes")
	}
	o.done(nil, now)
	if tr := o.take(false, now); len(tr.frames) != 1 {
		t.Fatalf("turn %+v, want the frame that came during the write", tr)
	}
	o.done(nil, now)
	if tr := o.take(false, now); !tr.idle {
		t.Fatalf("turn %+v, want idle", tr)
	}
	wg.Done() // the writer exits
	if start, _ := o.push(frame(3)); !start {
		t.Fatal("a push after the writer exited starts none")
	}
	if o.close() {
		t.Fatal("close asked for a writer while one runs")
	}
	if tr := o.take(true, now); !tr.close || tr.broken || len(tr.frames) != 0 {
		t.Fatalf("turn after close %+v, want close with nothing to write", tr)
	}
	wg.Done()
	wg.Wait() // counted exactly once per writer asked for: a negative count would panic

	o, wg = newOutbox(outboxLimits{soft: 16, hard: 32})
	o.breakOff()
	if !o.close() {
		t.Fatal("close of an idle outbox asked for no writer to close the socket")
	}
	if o.close() {
		t.Fatal("a second close asked for another writer")
	}
	if start, full := o.push(frame(0)); start || full {
		t.Fatalf("push after close: start %v full %v, want the frame dropped", start, full)
	}
	if tr := o.take(true, now); !tr.close || !tr.broken {
		t.Fatalf("turn %+v, want a close without the handshake", tr)
	}
	wg.Done()
	wg.Wait()
}

// TestOutboxKeepsOrderAcrossTurns: whatever the interleaving of pushes and turns, the writer
// gets every frame once, in the order pushed.
func TestOutboxKeepsOrderAcrossTurns(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		o, _ := newOutbox(outboxLimits{soft: 1 << 20, hard: 1 << 20})
		var written [][]byte
		pushed := 0
		for pushed < 500 || len(written) < pushed {
			if pushed < 500 && rng.IntN(3) > 0 {
				o.push(frame(pushed))
				pushed++
				continue
			}
			tr := o.take(false, time.Now())
			written = append(written, slices.Clone(tr.frames)...)
			if len(tr.frames) > 0 {
				o.done(tr.frames, time.Now())
			}
		}
		for i, f := range written {
			if string(f) != string(frame(i)) {
				t.Fatalf("seed %d: frame %d written is %s", seed, i, f)
			}
		}
	}
}

// TestOutboxBoundsOnlyASlowClient: past the soft bound a push is refused only while the writer
// has been stuck in one write for slowAfter; at the hard bound always.
func TestOutboxBoundsOnlyASlowClient(t *testing.T) {
	o, _ := newOutbox(outboxLimits{soft: 4, hard: 8, slowAfter: time.Minute})
	for i := range 8 {
		if _, full := o.push(frame(i)); full {
			t.Fatalf("push %d refused with a writer that is not stuck", i)
		}
	}
	if _, full := o.push(frame(8)); !full {
		t.Fatal("push at the hard bound accepted")
	}
	o, _ = newOutbox(outboxLimits{soft: 4, hard: 8, slowAfter: time.Minute})
	for i := range 4 {
		o.push(frame(i))
	}
	tr := o.take(false, time.Now().Add(-2*time.Minute)) // the write began two minutes ago
	for i := range 4 {
		o.push(frame(i))
	}
	if _, full := o.push(frame(4)); !full {
		t.Fatal("push past the soft bound accepted while the client has not read for two minutes")
	}
	o.done(tr.frames, time.Now())
	if _, full := o.push(frame(4)); full {
		t.Fatal("push refused once the write finished")
	}
}

// TestOutboxSpacesWritesByTheInterval: a patient writer that comes back within the interval is
// told to wait out the rest, and then gets everything that came meanwhile in one batch; a frame
// to a socket not written to for the interval goes at once.
func TestOutboxSpacesWritesByTheInterval(t *testing.T) {
	o, _ := newOutbox(outboxLimits{soft: 16, hard: 32, interval: 10 * time.Millisecond})
	t0 := time.Now()
	o.push(frame(0))
	if tr := o.take(true, t0); len(tr.frames) != 1 || tr.wait != 0 {
		t.Fatalf("first turn %+v, want the frame at once", tr)
	}
	o.done([][]byte{nil}, t0)
	o.push(frame(1))
	tr := o.take(true, t0.Add(4*time.Millisecond))
	if tr.wait != 6*time.Millisecond || len(tr.frames) != 0 {
		t.Fatalf("turn 4ms after a write %+v, want a wait of 6ms", tr)
	}
	o.push(frame(2))
	if tr := o.take(false, t0.Add(10*time.Millisecond)); len(tr.frames) != 2 {
		t.Fatalf("turn after the wait %+v, want both frames that came", tr)
	}
	o.done([][]byte{nil, nil}, t0.Add(10*time.Millisecond))
	o.push(frame(3))
	if tr := o.take(true, t0.Add(25*time.Millisecond)); len(tr.frames) != 1 || tr.wait != 0 {
		t.Fatalf("turn 15ms after the last write %+v, want the frame at once", tr)
	}
}
