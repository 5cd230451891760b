// Package procstat reads what Linux's /proc says of a process: its state, parent, niceness and
// CPU time (/proc/<pid>/stat), its resident memory (/proc/<pid>/status), its read and write
// calls (/proc/<pid>/io), and its descendants.
// natter bench measures a server and its children with it; tests check niceness and liveness.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/cputime"
)

// Stat is a process's line of /proc/<pid>/stat, the fields natter reads.
type Stat struct {
	State string // "R", "S", "Z" (a zombie: exited, not yet reaped), ...
	PPID  int
	CPU   time.Duration // user + system
	Nice  int
}

// Alive reports whether the process runs: it exists and is not a zombie.
func (s Stat) Alive() bool { return s.State != "Z" }

// Read reads /proc/<pid>/stat; pid 0 is this process.
func Read(pid int) (Stat, error) { return readProcFile(pid, "stat", parse) }

// parse decodes a stat line: "pid (name) state ppid ... utime stime ... priority nice ...".
// The name may hold spaces and parentheses; the fields after its last ')' do not.
func parse(raw []byte) (Stat, error) {
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3, the state
	if len(f) < 17 {
		return Stat{}, fmt.Errorf("%d fields after the name, want at least 17", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 63) // fields 14 and 15
	st, err3 := strconv.ParseUint(f[12], 10, 63)
	nice, err4 := strconv.Atoi(f[16]) // field 19
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Stat{}, fmt.Errorf("bad ppid, utime, stime or nice in %q", f[:17])
	}
	if ut+st > uint64(1<<63-1)/uint64(cputime.ClockTick) {
		return Stat{}, fmt.Errorf("CPU time %d+%d ticks out of range", ut, st)
	}
	return Stat{State: f[0], PPID: ppid, CPU: time.Duration(ut+st) * cputime.ClockTick, Nice: nice}, nil
}

// readProcFile reads file of /proc/<pid> (pid 0: this process) and decodes it with parse; a
// decoding error names the file.
func readProcFile[T any](pid int, file string, parse func([]byte) (T, error)) (T, error) {
	path := "/proc/self/" + file
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/%s", pid, file)
	}
	var zero T
	raw, err := os.ReadFile(path)
	if err != nil {
		return zero, err
	}
	v, err := parse(raw)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Tree is pid and every process descended from it, pid first.
func Tree(pid int) ([]int, error) {
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
		if s, err := Read(p); err == nil { // one that just ended is left out
			children[s.PPID] = append(children[s.PPID], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// RSS is the resident set size of process pid (VmRSS in /proc/<pid>/status), in bytes; pid 0
// is this process.
func RSS(pid int) (int64, error) { return readProcFile(pid, "status", parseRSS) }

// parseRSS decodes the "VmRSS: N kB" line of a status file.
func parseRSS(raw []byte) (int64, error) {
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// Calls counts a process's read and write system calls, all its threads': syscr (read, readv,
// pread64, ...) and syscw (write, writev, pwrite64, ...) of /proc/<pid>/io. Socket and file
// calls alike; not recvmsg or sendmsg, and no other call.
type Calls struct {
	Reads  uint64 `json:"reads"`
	Writes uint64 `json:"writes"`
}

// ReadCalls reads /proc/<pid>/io; pid 0 is this process. Reading another user's process needs
// the right to trace it.
func ReadCalls(pid int) (Calls, error) { return readProcFile(pid, "io", parseCalls) }

// parseCalls decodes the "syscr: N" and "syscw: N" lines of an io file.
func parseCalls(raw []byte) (Calls, error) {
	var c Calls
	var seen int
	for line := range strings.SplitSeq(string(raw), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "syscr" && name != "syscw") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return Calls{}, fmt.Errorf("bad %s: %w", name, err)
		}
		if name == "syscr" {
			c.Reads = n
			seen |= 1
		} else {
			c.Writes = n
			seen |= 2
		}
	}
	if seen != 3 {
		return Calls{}, fmt.Errorf("no syscr or syscw")
	}
	return c, nil
}
