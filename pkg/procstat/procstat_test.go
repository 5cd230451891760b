package procstat

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/cputime"
)

// line is a real /proc/<pid>/stat line, its name given spaces and parentheses.
const line = "4242 (natter (x) y) S 4200 4242 4200 0 -1 4194560 2911 0 0 0 150 37 0 0 39 19 12 0 881 1266384896 9561 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n"

func TestParse(t *testing.T) {
	s, err := parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{State: "S", PPID: 4200, CPU: (150 + 37) * cputime.ClockTick, Nice: 19}
	if s != want {
		t.Fatalf("parse = %+v, want %+v", s, want)
	}
	if !s.Alive() || (Stat{State: "Z"}).Alive() {
		t.Fatal("Alive: a sleeping process is alive, a zombie is not")
	}
	for _, bad := range []string{"", "4242 natter S 1", "4242 (natter) S 1 2 3", "4242 (n) S x 1 1 0 -1 1 1 0 0 0 150 37 0 0 39 19 12",
		"4242 (n) S 1 1 1 0 -1 1 1 0 0 0 -150 37 0 0 39 19 12", "4242 (n) S 1 1 1 0 -1 1 1 0 0 0 9223372036854775807 0 0 0 39 19 12"} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(line))
	f.Add([]byte("1 (a) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if s, err := parse(raw); err == nil && s.CPU < 0 {
			t.Fatalf("%q: negative CPU %s", raw, s.CPU)
		}
	})
}

// ioFile is a real /proc/<pid>/io.
const ioFile = "rchar: 2179\nwchar: 466\nsyscr: 7\nsyscw: 3\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"

func TestParseCalls(t *testing.T) {
	c, err := parseCalls([]byte(ioFile))
	if err != nil || c != (Calls{Reads: 7, Writes: 3}) {
		t.Fatalf("parseCalls = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "syscr: 7\n", "syscw: 3\n", "syscr: -1\nsyscw: 3\n", "syscr: 7\nsyscw: x\n"} {
		if _, err := parseCalls([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseCalls(f *testing.F) {
	f.Add([]byte(ioFile))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = parseCalls(raw) // no panic, whatever it is given
	})
}

// TestReadCallsCountsThisProcesssWrites: a write to a file is one more write call of this
// process in its /proc io file.
func TestReadCallsCountsThisProcesssWrites(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, err := ReadCalls(0)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	after, err := ReadCalls(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.Writes < before.Writes+10 {
		t.Fatalf("write calls %d then %d after 10 writes", before.Writes, after.Writes)
	}
}

func TestReadTreeAndRSSOfRealProcesses(t *testing.T) {
	self, err := Read(os.Getpid())
	if err != nil || !self.Alive() || self.PPID != os.Getppid() {
		t.Fatalf("Read(self) = %+v, %v; parent %d", self, err, os.Getppid())
	}
	// A shell and its child, in a process group of their own.
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	var tree []int
	for deadline := time.Now().Add(10 * time.Second); len(tree) != 2; time.Sleep(10 * time.Millisecond) {
		if tree, err = Tree(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree of the shell: %v, want it and its child", tree)
		}
	}
	if tree[0] != cmd.Process.Pid {
		t.Fatalf("tree %v does not start with %d", tree, cmd.Process.Pid)
	}
	if s, err := Read(tree[1]); err != nil || s.PPID != tree[0] {
		t.Fatalf("child %d: %+v, %v", tree[1], s, err)
	}
	for _, pid := range []int{0, tree[1]} {
		if n, err := RSS(pid); err != nil || n <= 0 {
			t.Fatalf("RSS(%d) = %d, %v", pid, n, err)
		}
	}
}
