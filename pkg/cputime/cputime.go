// Package cputime reads how much CPU time this process and the machine have used: for
// measuring (natter bench) and for deciding on the spare P (spareproc).
package cputime

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is one reading of the CPU time used so far.
type Usage struct {
	At time.Time
	// Own is the CPU time this process has used (user and system).
	Own time.Duration
	// Idle and Total are the machine's idle (idle and iowait) and total CPU time, all CPUs
	// together; Total is 0 where the machine's figures cannot be read (outside Linux).
	Idle, Total time.Duration
}

// Busy is the CPU time all the machine's processes have used: Total less Idle.
func (u Usage) Busy() time.Duration { return u.Total - u.Idle }

// Own is the CPU time this process has used (getrusage: user and system).
func Own() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Read reads this process's CPU time (Own) and, on Linux, the machine's (/proc/stat).
func Read() (Usage, error) {
	own, err := Own()
	if err != nil {
		return Usage{}, err
	}
	u := Usage{At: time.Now(), Own: own}
	b, err := os.ReadFile("/proc/stat")
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return Usage{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	if u.Idle, u.Total, err = parseStat(string(b)); err != nil {
		return Usage{}, err
	}
	return u, nil
}

// ClockTick is the unit of /proc/stat and /proc/<pid>/stat: USER_HZ, 100 on every Linux
// architecture Go supports.
const ClockTick = 10 * time.Millisecond

// parseStat reads the machine's idle (idle and iowait) and total CPU time from /proc/stat's
// first line: "cpu user nice system idle iowait irq softirq steal guest guest_nice", in ticks.
// Guest time is already counted in user and nice.
func parseStat(stat string) (idle, total time.Duration, err error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var sum, idleTicks uint64
	for i, s := range f[1:9] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: field %d of %q: %w", i+1, line, err)
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idleTicks += n
		}
	}
	return time.Duration(idleTicks) * ClockTick, time.Duration(sum) * ClockTick, nil
}
