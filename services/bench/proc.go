package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/cputime"
)

// cpuMeter reads the CPU time (user + system) of the process being measured: this process when
// natter runs in-process, or the --pid of an external one.
type cpuMeter struct {
	pid int // 0: this process
}

func (m cpuMeter) read() (time.Duration, error) {
	if m.pid == 0 {
		return cputime.Own()
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", m.pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", m.pid)
	}
	// After the name: state(3) ppid(4) ... utime(14) stime(15); f[0] is field 3.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", m.pid)
	}
	return time.Duration(ut+st) * cputime.ClockTick, nil
}

// rssBytes is the resident set size of pid (0: this process) from /proc/<pid>/status.
func rssBytes(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: VmRSS: %w", path, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS", path)
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
