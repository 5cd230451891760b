// Package spareproc gives the Go scheduler one P (a slot for running Go code) more than the
// process's CPUs while the machine has CPU to spare, and takes it back when it has none.
//
// Why: Go lets a goroutine run for up to 10 ms before it preempts it for another waiting on the
// same P, and it looks for sockets that became ready only on a P with nothing else to run (or
// every 10 ms). When a burst of CPU-bound work holds every P — search's index write, a store
// compaction, the garbage collector — each hop of a message waits behind it. With one P more than
// CPUs, one P is usually idle in the network poller, and the kernel, which slices threads far more
// finely and runs a thread that just woke at once, lets it deliver. Under saturation the spare P
// only adds switching between threads, so it is given only while the machine leaves CPU idle and
// the process does not use all of its own (performance.md, twenty-sixth round).
package spareproc

import (
	"context"
	"os"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/natter-chat/natter/pkg/cputime"
)

// Thresholds, in cores, over one Interval. The spare P is given when the machine left at least
// idleOn idle and the process left at least freeOn of its own CPUs unused for OnAfter intervals
// in a row; it is taken back after the first interval in which either falls below its off
// threshold. The gaps between the two keep it from flapping, and the quick way back keeps a
// load that fills the CPUs from running with it for more than an interval.
const (
	idleOn, idleOff = 0.4, 0.2
	freeOn, freeOff = 0.5, 0.25
)

// Interval is how often the usage is read and the decision made; OnAfter is how many intervals
// in a row must have room for the spare P before it is given.
const (
	Interval = 250 * time.Millisecond
	OnAfter  = 4
)

// Reader reads the CPU time used so far (cputime.Read).
type Reader func() (cputime.Usage, error)

// Want reports whether the last interval leaves room for the spare P, given whether it is there
// now, the process's CPUs, the cores the process used and the machine's idle cores over the
// interval (idle < 0: unknown).
func Want(on bool, cpus int, own, idle float64) bool {
	free := float64(cpus) - own
	if on {
		return free >= freeOff && (idle < 0 || idle >= idleOff)
	}
	return free >= freeOn && (idle < 0 || idle >= idleOn)
}

// Governor gives and takes back the spare P. Run it on one goroutine.
type Governor struct {
	Log  *zap.Logger
	Read Reader
	// Set sets GOMAXPROCS; Default restores the runtime's default and returns it (runtime's own
	// unless a test sets them).
	Set     func(n int)
	Default func() int
	// Changed, when set, is told each change (for a metric).
	Changed func(on bool)
}

// New returns a Governor of this process, or nil when GOMAXPROCS is set in the environment: the
// operator's choice stands.
func New(log *zap.Logger) *Governor {
	if os.Getenv("GOMAXPROCS") != "" {
		log.Info("GOMAXPROCS is set: no spare P", zap.String("gomaxprocs", os.Getenv("GOMAXPROCS")))
		return nil
	}
	return &Governor{
		Log: log, Read: cputime.Read,
		Set: func(n int) { runtime.GOMAXPROCS(n) },
		Default: func() int {
			runtime.SetDefaultGOMAXPROCS()
			return runtime.GOMAXPROCS(0)
		},
	}
}

// Run decides every interval until ctx ends, then restores the runtime's default.
func (g *Governor) Run(ctx context.Context, interval time.Duration) {
	cpus := g.Default()
	on, room := false, 0 // room: intervals in a row with room for the spare P
	defer func() {
		if on {
			g.Default()
		}
	}()
	last, err := g.Read()
	if err != nil {
		g.Log.Warn("cpu usage unreadable: no spare P", zap.Error(err))
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := g.Read()
		if err != nil {
			g.Log.Warn("cpu usage unreadable: no spare P", zap.Error(err))
			return
		}
		own, idle := cores(last, now)
		last = now
		if Want(on, cpus, own, idle) {
			room++
		} else {
			room = 0
		}
		switch {
		case !on && room >= OnAfter:
			g.Set(cpus + 1)
		case on && room == 0:
			cpus = g.Default() // the default may have changed meanwhile (a new cgroup quota)
		default:
			continue
		}
		on = !on
		g.Log.Debug("spare P", zap.Bool("on", on), zap.Int("cpus", cpus), zap.Float64("own_cores", own), zap.Float64("idle_cores", idle))
		if g.Changed != nil {
			g.Changed(on)
		}
	}
}

// cores is what the process used and the machine left idle between two readings, in cores;
// idle is -1 when the machine's figures are unknown.
func cores(a, b cputime.Usage) (own, idle float64) {
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 {
		return 0, -1
	}
	own = (b.Own - a.Own).Seconds() / wall
	idle = -1
	if a.Total > 0 && b.Total > a.Total {
		idle = (b.Idle - a.Idle).Seconds() / wall
	}
	return own, idle
}
