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
	cmd := exec.Command("sh", "-c", `sh -c 'while :; do :; done' & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	m := cpuMeter{pid: cmd.Process.Pid}
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
	own, err1 := procstat.RSS(cmd.Process.Pid)
	all, err2 := rssBytes(cmd.Process.Pid)
	if err1 != nil || err2 != nil || all <= own {
		t.Fatalf("RSS of the tree %d, of the shell %d (%v, %v): the child's is missing", all, own, err1, err2)
	}
}
