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
// natter runs in-process, or the --pid of an external one with its descendants (natter run's
// search process).
type cpuMeter struct {
	pid int // 0: this process
}

func (m cpuMeter) read() (time.Duration, error) {
	if m.pid == 0 {
		return cputime.Own()
	}
	pids, err := processTree(m.pid)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, pid := range pids {
		f, err := procStat(pid)
		if err != nil {
			if pid != m.pid { // a descendant that just ended
				continue
			}
			return 0, err
		}
		// f[0] is field 3 of stat: utime and stime are fields 14 and 15.
		ut, err1 := strconv.ParseUint(f[11], 10, 64)
		st, err2 := strconv.ParseUint(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
		}
		sum += time.Duration(ut+st) * cputime.ClockTick
	}
	return sum, nil
}

// procStat is the fields of /proc/<pid>/stat after the command name, from field 3 (state) on:
// the name (field 2) may hold spaces, the fields after its closing parenthesis do not.
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return f, nil
}

// processTree is pid and every process descended from it.
func processTree(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := procStat(p); err == nil {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], p)
			}
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// rssBytes is the resident set size of pid (0: this process) and its descendants.
func rssBytes(pid int) (int64, error) {
	if pid == 0 {
		return rssOf("/proc/self/status")
	}
	pids, err := processTree(pid)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range pids {
		n, err := rssOf(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			if p != pid {
				continue
			}
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// rssOf reads VmRSS from a /proc/<pid>/status file.
func rssOf(path string) (int64, error) {
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
