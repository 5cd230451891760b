package bench

import (
	"errors"
	"runtime"
	"time"

	"github.com/natter-chat/natter/pkg/cputime"
	"github.com/natter-chat/natter/pkg/procstat"
)

// cpuMeter reads the CPU time (user + system) of the process being measured: this process when
// natter runs in-process, or the --pid of an external one with its descendants (natter run's
// search process).
type cpuMeter struct {
	pid int // 0: this process
}

func (m cpuMeter) read() (time.Duration, error) {
	if m.pid == 0 {
		return cputime.Own()
	}
	return overTree(m.pid, func(pid int) (time.Duration, error) {
		st, err := procstat.Read(pid)
		return st.CPU, err
	}, func(sum *time.Duration, cpu time.Duration) { *sum += cpu })
}

// usage is what a phase of natter bench peers counts of the server and its descendants at one
// moment: their CPU time and their read and write calls.
type usage struct {
	cpu   time.Duration
	calls procstat.Calls
	// noCalls: the server's own calls could not be read (its io file needs the right to trace
	// it), so calls is not the tree's.
	noCalls bool
}

// usage reads the CPU time and the read and write calls of the process being measured and its
// descendants, in one walk of the process tree. A descendant that ended between two readings
// takes its CPU time and calls with it: a phase's count is then short.
func (m cpuMeter) usage() (usage, error) {
	return overTree(m.pid, func(pid int) (usage, error) {
		st, err := procstat.Read(pid)
		if err != nil {
			return usage{}, err
		}
		c, err := procstat.ReadCalls(pid)
		if err != nil && pid != m.pid {
			return usage{}, err // a descendant that just ended: left out
		}
		return usage{cpu: st.CPU, calls: c, noCalls: err != nil}, nil
	}, func(sum *usage, u usage) {
		sum.cpu += u.cpu
		sum.calls.Reads += u.calls.Reads
		sum.calls.Writes += u.calls.Writes
		sum.noCalls = sum.noCalls || u.noCalls
	})
}

// callsSince is the read and write calls made from u0 to u, nil when they are not known.
func (u usage) callsSince(u0 usage) *procstat.Calls {
	if u.noCalls || u0.noCalls || u.calls.Reads < u0.calls.Reads || u.calls.Writes < u0.calls.Writes {
		return nil
	}
	return &procstat.Calls{Reads: u.calls.Reads - u0.calls.Reads, Writes: u.calls.Writes - u0.calls.Writes}
}

// rssBytes is the resident set size of pid (0: this process) and its descendants.
func rssBytes(pid int) (int64, error) {
	return overTree(pid, procstat.RSS, func(sum *int64, n int64) { *sum += n })
}

// overTree adds up what read says of pid and of each of its descendants (pid 0: this process
// alone). A descendant that ended meanwhile is left out; an error of pid's own is returned.
func overTree[T any](pid int, read func(pid int) (T, error), add func(sum *T, v T)) (T, error) {
	var sum T
	pids := []int{pid}
	if pid != 0 {
		var err error
		if pids, err = procstat.Tree(pid); err != nil {
			return sum, err
		}
	}
	for _, p := range pids {
		v, err := read(p)
		if err != nil {
			if p != pid {
				continue
			}
			var zero T
			return zero, err
		}
		add(&sum, v)
	}
	return sum, nil
}

// liveBytes is this process's live heap plus goroutine stacks after a full collection (what it
// holds, without garbage not yet collected), and the stacks alone.
func liveBytes() (total, stacks int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) + int64(ms.StackInuse), int64(ms.StackInuse)
}

// contention measures how much CPU other processes on the machine took during a measurement:
// a bench on a busy machine measures the machine, not natter.
type contention struct {
	busy0, self0, target0 time.Duration
	target                cpuMeter
	ok                    bool
}

// sample is the CPU time the machine has used (everything but idle and iowait), this process's
// and the target's: one reading of /proc/stat and getrusage.
func (c *contention) sample() (busy, self, target time.Duration, err error) {
	u, err := cputime.Read()
	if err != nil {
		return 0, 0, 0, err
	}
	if u.Total == 0 {
		return 0, 0, 0, errors.New("/proc/stat: not available")
	}
	if c.target.pid != 0 {
		if target, err = c.target.read(); err != nil {
			return 0, 0, 0, err
		}
	}
	return u.Busy(), u.Own, target, nil
}

func startContention(target cpuMeter) *contention {
	c := &contention{target: target}
	var err error
	c.busy0, c.self0, c.target0, err = c.sample()
	c.ok = err == nil
	return c
}

// otherCores is the average number of cores that processes other than this one (and the
// external natter, if measured) kept busy since start; -1 when unknown.
func (c *contention) otherCores(elapsed time.Duration) float64 {
	if !c.ok || elapsed <= 0 {
		return -1
	}
	busy, self, target, err := c.sample()
	if err != nil {
		return -1
	}
	other := (busy - c.busy0) - (self - c.self0) - (target - c.target0)
	return max(0, other.Seconds()/elapsed.Seconds())
}
