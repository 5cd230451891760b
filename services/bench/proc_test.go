package bench

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/procstat"
)

// TestAProcesssCPUAndMemoryIncludeItsDescendants measures a shell whose grandchild spins: the
// shell itself uses no CPU, so all of what cpuMeter reads is the grandchild's.
func TestAProcesssCPUAndMemoryIncludeItsDescendants(t *testing.T) {
	shell := startShell(t, `sh -c 'while :; do :; done' & wait`)
	m := cpuMeter{pid: shell}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cpu, err := m.read()
		if err != nil {
			t.Fatal(err)
		}
		if cpu >= 200*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU of the tree is %s after 20 s of a spinning grandchild", cpu)
		}
		time.Sleep(50 * time.Millisecond)
	}
	own, err1 := procstat.RSS(shell)
	all, err2 := rssBytes(shell)
	if err1 != nil || err2 != nil || all <= own {
		t.Fatalf("RSS of the tree %d, of the shell %d (%v, %v): the child's is missing", all, own, err1, err2)
	}
}

// startShell runs script in a shell of a process group of its own, killed with all it started
// when the test ends, and returns the shell's pid.
func startShell(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// TestUsageCountsTheTreesCPUAndCalls measures a shell whose grandchild writes in a loop: the
// shell itself neither runs nor writes, so the CPU time and the write calls usage reads, in its
// one walk of the tree, are the grandchild's.
func TestUsageCountsTheTreesCPUAndCalls(t *testing.T) {
	m := cpuMeter{pid: startShell(t, `sh -c 'while :; do echo x; done >/dev/null' & wait`)}
	u0, err := m.usage()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		u, err := m.usage()
		if err != nil {
			t.Fatal(err)
		}
		calls := u.callsSince(u0)
		if calls == nil {
			t.Fatalf("no calls: %+v then %+v", u0, u)
		}
		if u.cpu-u0.cpu >= 100*time.Millisecond && calls.Writes >= 1000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s of a writing grandchild: CPU %s, %+v calls", u.cpu-u0.cpu, *calls)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCallsSinceIsUnknownWithoutBothCounts(t *testing.T) {
	at := func(reads, writes uint64, noCalls bool) usage {
		return usage{calls: procstat.Calls{Reads: reads, Writes: writes}, noCalls: noCalls}
	}
	if c := at(15, 30, false).callsSince(at(10, 20, false)); c == nil || *c != (procstat.Calls{Reads: 5, Writes: 10}) {
		t.Errorf("callsSince = %v, want 5 reads and 10 writes", c)
	}
	for _, pair := range [][2]usage{
		{at(15, 30, true), at(10, 20, false)},
		{at(15, 30, false), at(10, 20, true)},
		{at(5, 30, false), at(10, 20, false)}, // a descendant that ended took its calls with it
		{at(15, 10, false), at(10, 20, false)},
	} {
		if c := pair[0].callsSince(pair[1]); c != nil {
			t.Errorf("%+v since %+v = %v, want unknown", pair[0], pair[1], *c)
		}
	}
}
