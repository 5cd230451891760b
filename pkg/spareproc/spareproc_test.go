package spareproc

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/cputime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWant(t *testing.T) {
	for _, tc := range []struct {
		on        bool
		own, idle float64
		want      bool
	}{
		{false, 1.0, 0.65, true},  // a paced load on two cores: a third of the machine idle
		{false, 1.5, 0.07, false}, // flat out beside a load generator: the machine is full
		{false, 1.9, 0.9, false},  // the process uses its CPUs (a container on a larger host)
		{false, 1.0, -1, true},    // the machine's figures unknown: the process's own decide
		{false, 1.0, 0.3, false},  // not enough idle to give it
		{true, 1.0, 0.3, true},    // ... but enough to keep it
		{true, 1.0, 0.1, false},   // the machine filled up
		{true, 1.6, 0.5, true},    // the process is busier, still inside its CPUs
		{true, 1.8, 0.5, false},   // ... and now it is not
		{false, 0.05, 1.9, true},  // idle
		{true, 0.05, 1.9, true},   // idle, and it stays
		{false, 1.5, -1, true},    // half a CPU free is enough to give it
		{false, 1.6, -1, false},   // less is not
	} {
		if got := Want(tc.on, 2, tc.own, tc.idle); got != tc.want {
			t.Errorf("Want(on %v, 2 CPUs, own %.2f, idle %.2f) = %v, want %v", tc.on, tc.own, tc.idle, got, tc.want)
		}
	}
}

func TestCores(t *testing.T) {
	at := time.Unix(1000, 0)
	a := cputime.Usage{At: at, Own: 10 * time.Second, Idle: 100 * time.Second, Total: 400 * time.Second}
	b := cputime.Usage{At: at.Add(2 * time.Second), Own: 12 * time.Second, Idle: 101 * time.Second, Total: 404 * time.Second}
	if own, idle := cores(a, b); own != 1 || idle != 0.5 {
		t.Fatalf("cores = %v, %v; want 1, 0.5", own, idle)
	}
	a.Total, b.Total = 0, 0
	if _, idle := cores(a, b); idle != -1 {
		t.Fatalf("machine unknown: idle %v, want -1", idle)
	}
	if own, idle := cores(b, b); own != 0 || idle != -1 {
		t.Fatalf("no time between readings: %v, %v", own, idle)
	}
}

// fake is a machine of two CPUs whose usage a test scripts interval by interval.
type fake struct {
	mu    sync.Mutex
	u     cputime.Usage
	steps [][2]float64 // own, idle cores of each next interval
	procs int
	sets  []int
	read  chan struct{} // a reading was taken
}

func (f *fake) Read() (cputime.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.steps) > 0 {
		s := f.steps[0]
		f.steps = f.steps[1:]
		f.u.At = f.u.At.Add(time.Second)
		f.u.Own += time.Duration(s[0] * float64(time.Second))
		f.u.Idle += time.Duration(s[1] * float64(time.Second))
		f.u.Total += 2 * time.Second
	}
	select {
	case f.read <- struct{}{}:
	default:
	}
	return f.u, nil
}

func (f *fake) set(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs = n
	f.sets = append(f.sets, n)
}

func (f *fake) def() int {
	f.set(2)
	return 2
}

func TestGovernorGivesAndTakesBackTheSpareP(t *testing.T) {
	f := &fake{u: cputime.Usage{At: time.Unix(0, 0), Total: time.Second}, read: make(chan struct{}, 1),
		// idle (given after OnAfter intervals); a paced load; flat out (taken back at once);
		// paced again, but one busy interval before OnAfter in a row; given again; the end
		steps: [][2]float64{{0.1, 1.8}, {0.1, 1.8}, {0.1, 1.8}, {0.1, 1.8}, {1.0, 0.6}, {1.5, 0.05}, {1.5, 0.05},
			{1.0, 0.6}, {1.0, 0.6}, {1.5, 0.05}, {1.0, 0.6}, {1.0, 0.6}, {1.0, 0.6}, {1.0, 0.6}, {1.0, 0.6}}}
	var changes []bool
	g := &Governor{Log: zap.NewNop(), Read: f.Read, Set: f.set, Default: f.def, Changed: func(on bool) { changes = append(changes, on) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Run(ctx, time.Millisecond)
	}()
	for {
		<-f.read
		f.mu.Lock()
		left := len(f.steps)
		f.mu.Unlock()
		if left == 0 {
			break
		}
	}
	time.Sleep(10 * time.Millisecond) // the last reading's decision
	cancel()
	<-done
	// 2 at the start; 3 when idle; 2 flat out; 3 paced again; 2 restored at the end.
	if want := []int{2, 3, 2, 3, 2}; !slices.Equal(f.sets, want) {
		t.Fatalf("GOMAXPROCS set to %v, want %v", f.sets, want)
	}
	if want := []bool{true, false, true}; !slices.Equal(changes, want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
}
