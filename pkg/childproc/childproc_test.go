//go:build linux

package childproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/natter-chat/natter/pkg/procstat"
)

// The test binary is also the child: roleEnv names what it does then, readyEnv the file it writes
// once ready.
const (
	roleEnv  = "CHILDPROC_TEST_ROLE"
	readyEnv = "CHILDPROC_TEST_READY"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "serve": // ready, then runs until SIGTERM
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		writeReady()
		<-sig
		os.Exit(0)
	case "fail": // exits at once
		os.Exit(3)
	case "parent": // starts a serving child, writes its pid to the ready file, and waits to be killed
		ready := os.Getenv(readyEnv)
		c, err := start(context.Background(), spec("serve", ready+".child"), zap.NewNop())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(ready, []byte(strconv.Itoa(c.PID())), 0o644); err != nil {
			os.Exit(1)
		}
		select {}
	}
}

func writeReady() {
	if err := os.WriteFile(os.Getenv(readyEnv), []byte("ready"), 0o644); err != nil {
		os.Exit(1)
	}
}

// start is Start and WaitReady.
func start(ctx context.Context, s Spec, log *zap.Logger) (*Child, error) {
	c, err := Start(s, log)
	if err != nil {
		return nil, err
	}
	if err := c.WaitReady(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// spec runs this test binary in role, at nice 19, ready when it writes ready.
func spec(role, ready string) Spec {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	os.Setenv(roleEnv, role) //nolint:usetesting // read by the child only, through the environment it inherits
	os.Setenv(readyEnv, ready)
	return Spec{Name: "test-" + role, Path: exe, Args: []string{"-test.run=^$"}, Nice: 19, ReadyFile: ready, Stderr: os.Stderr}
}

// clearRole keeps the roles out of the environment of this process's later children.
func clearRole(t *testing.T) {
	t.Cleanup(func() { os.Unsetenv(roleEnv); os.Unsetenv(readyEnv) })
}

// niceOf is a process's niceness.
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	st, err := procstat.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.Nice
}

// alive reports whether pid runs (not gone, not a zombie).
func alive(pid int) bool {
	st, err := procstat.Read(pid)
	return err == nil && st.Alive()
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAChildRunsNicedIsStartedAgainAndStops(t *testing.T) {
	clearRole(t)
	ready := filepath.Join(t.TempDir(), "ready")
	c, err := start(context.Background(), spec("serve", ready), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	pid := c.PID()
	if got := niceOf(t, pid); got != 19 {
		t.Fatalf("child's nice = %d, want 19", got)
	}
	if got := niceOf(t, os.Getpid()); got != 0 {
		t.Fatalf("the parent's nice became %d", got)
	}

	// Killed, it is started again after the backoff, and writes its ready file again.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new child", func() bool { p := c.PID(); return p != 0 && p != pid })
	waitFor(t, "the new child's ready file", func() bool { _, err := os.Stat(ready); return err == nil })
	again := c.PID()
	if got := niceOf(t, again); got != 19 {
		t.Fatalf("restarted child's nice = %d, want 19", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c.PID() != 0 || alive(again) {
		t.Fatalf("child %d still running after Stop", again)
	}
	if err := c.Stop(ctx); err != nil { // a second Stop is a no-op
		t.Fatal(err)
	}
}

func TestAChildThatExitsBeforeItIsReadyIsReported(t *testing.T) {
	clearRole(t)
	c, err := start(context.Background(), spec("fail", filepath.Join(t.TempDir(), "ready")), zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("WaitReady = %v, want an error saying it exited", err)
	}
	if err := c.Stop(context.Background()); err != nil { // it is in its backoff: stopped at once
		t.Fatal(err)
	}
}

// A child not ready when the wait ends runs on (a niced child on busy CPUs is only slow), and
// Stop kills one that does not stop in time: here a child stopped with SIGSTOP.
func TestAChildNotReadyInTimeRunsOnAndStopKillsItWhenItHangs(t *testing.T) {
	clearRole(t)
	ready := filepath.Join(t.TempDir(), "ready")
	s := spec("serve", ready)
	s.ReadyFile += ".never" // the child writes the file its environment names
	c, err := Start(s, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child to be ready", func() bool { _, err := os.Stat(ready); return err == nil })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady = %v, want the deadline", err)
	}
	pid := c.PID()
	if pid == 0 || !alive(pid) {
		t.Fatalf("the child (%d) stopped when the wait for it ended", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelStop()
	if err := c.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop of a hung child = %v, want the deadline", err)
	}
	if alive(pid) {
		t.Fatalf("the hung child %d still runs after Stop", pid)
	}
}

func TestAChildEndsWhenItsParentIsKilled(t *testing.T) {
	clearRole(t)
	ready := filepath.Join(t.TempDir(), "ready")
	s := spec("parent", ready)
	// The parent is this binary in role "parent", started plainly.
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var child int
	waitFor(t, "the parent's report of its child", func() bool {
		raw, err := os.ReadFile(ready)
		if err != nil {
			return false
		}
		child, err = strconv.Atoi(string(raw))
		return err == nil && child > 0
	})
	if !alive(child) {
		t.Fatalf("child %d not running", child)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, "the child to end with its parent", func() bool { return !alive(child) })
}
