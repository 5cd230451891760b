// Package e2e drives the real natter binary: built once per run, started as a separate process on
// random ports with a temporary data directory, talked to only over HTTP and WebSocket.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter/test/natterbin"
)

var natterBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := natterbin.Build("natter-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natterBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Process is one running natter binary.
type Process struct {
	t     testing.TB
	cmd   *exec.Cmd
	Addrs struct {
		API       string `json:"api"`
		WebSocket string `json:"websocket"`
		NATS      string `json:"nats"`
		Metrics   string `json:"metrics"`
	}
	mu     sync.Mutex
	output bytes.Buffer
	exited chan error
}

// StartNatter runs `natter run` on random ports with dataDir and extra flags, and waits until it
// has written its addresses.
func StartNatter(t testing.TB, dataDir string, extra ...string) *Process {
	t.Helper()
	p, addrFile := launchNatter(t, dataDir, extra...)
	p.awaitAddrs(addrFile)
	return p
}

// launchNatter is StartNatter without the wait: it returns once the process runs, with the file
// it writes its addresses to when it has started.
func launchNatter(t testing.TB, dataDir string, extra ...string) (*Process, string) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addrs.json")
	args := append([]string{"run", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0",
		"--nats-port", "-1", "--metrics-addr", "127.0.0.1:0", "--addr-file", addrFile, "--log-format", "json", "--log-level", "info",
		"--password-cost", "4"}, extra...) // bcrypt's cheapest: under -race the default cost takes seconds a hash
	p := &Process{t: t, cmd: exec.Command(natterBin, args...), exited: make(chan error, 1)}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("natter output:\n%s", p.Output())
		}
	})
	return p, addrFile
}

// awaitAddrs waits until the process has written its addresses to addrFile.
func (p *Process) awaitAddrs(addrFile string) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && json.Unmarshal(b, &p.Addrs) == nil {
			return
		}
		select {
		case err := <-p.exited:
			p.t.Fatalf("natter exited during start-up: %v\n%s", err, p.Output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("natter not ready after 60s\n%s", p.Output())
		}
	}
}

// Output is everything the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// hasLine reports whether the process printed a line holding every one of parts.
func (p *Process) hasLine(parts ...string) bool {
	for line := range strings.SplitSeq(p.Output(), "\n") {
		if !slices.ContainsFunc(parts, func(part string) bool { return !strings.Contains(line, part) }) {
			return true
		}
	}
	return false
}

// Kill sends SIGKILL, as kill -9 does, and waits for the process to be gone.
func (p *Process) Kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
}

// Interrupt sends SIGINT (Ctrl-C) and waits for a clean exit.
func (p *Process) Interrupt() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("natter exited with %v after Ctrl-C\n%s", err, p.Output())
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("natter did not stop within 60s of Ctrl-C\n%s", p.Output())
	}
	if out := p.Output(); !strings.Contains(out, "stopped cleanly") {
		p.t.Fatalf("no clean stop in the log:\n%s", out)
	}
}
