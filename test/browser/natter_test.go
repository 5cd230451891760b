package browser

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// natter runs `natter run` with one data directory on fixed ports picked at random, so that it
// can be stopped and started again where the browsers expect it.
type natter struct {
	t       *testing.T
	dataDir string
	apiAddr string
	wsAddr  string
	API     string   // http://host:port
	flags   []string // added to natter run's
	cmd     *exec.Cmd
	exited  chan error
	mu      sync.Mutex
	out     bytes.Buffer
}

func (n *natter) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNatter starts natter run, with flags added to the test's own.
func startNatter(t *testing.T, flags ...string) *natter {
	t.Helper()
	n := &natter{t: t, dataDir: t.TempDir(), apiAddr: freeAddr(t), wsAddr: freeAddr(t), flags: flags}
	t.Cleanup(func() {
		if n.cmd != nil {
			_ = n.cmd.Process.Kill()
			if err := <-n.exited; err != nil {
				t.Logf("natter, killed at the end of the test: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("natter output:\n%s", n.output())
		}
	})
	n.start()
	return n
}

// start runs natter and waits until it has written its addresses.
func (n *natter) start() {
	t := n.t
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addrs.json")
	cmd := exec.Command(natterBin, "run", "--data-dir", n.dataDir, "--api-addr", n.apiAddr, "--ws-addr", n.wsAddr,
		"--nats-port", "-1", "--metrics-addr", "", "--addr-file", addrFile, "--log-format", "json", "--log-level", "info",
		"--password-cost", "4") // bcrypt's cheapest: under -race the default cost takes seconds a hash
	cmd.Args = append(cmd.Args, n.flags...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	n.cmd, n.exited = cmd, exited
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n.mu.Lock()
			n.out.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
		exited <- cmd.Wait()
	}()
	var addrs struct {
		API string `json:"api"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && json.Unmarshal(b, &addrs) == nil && addrs.API != "" {
			n.API = addrs.API
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("natter exited during start-up: %v\n%s", err, n.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("natter not ready after 60s\n%s", n.output())
		}
	}
}

// stop sends SIGINT, as Ctrl-C does (clients are told to reconnect), and waits for the exit.
func (n *natter) stop() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGINT); err != nil {
		n.t.Fatal(err)
	}
	select {
	case err := <-n.exited:
		if err != nil {
			n.t.Fatalf("natter exited with %v after Ctrl-C", err)
		}
	case <-time.After(30 * time.Second):
		n.t.Fatal("natter did not stop within 30s of Ctrl-C")
	}
	n.cmd = nil
}
