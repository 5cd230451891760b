package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCtrlCDuringTheStartEndsItCleanly: a SIGINT while natter starts is caught, not the default
// action that ends a process at once: the start is ended (what started is stopped again) or, if
// it was done, natter stops cleanly; either way it exits with a status, not by the signal.
func TestCtrlCDuringTheStartEndsItCleanly(t *testing.T) {
	t.Setenv("NATTER_JWT_SECRET", strings.Repeat("s", 48))
	p, _ := launchNatter(t, t.TempDir())
	// Once the process logs, it runs natter's own code, past the runtime's start.
	for deadline := time.Now().Add(60 * time.Second); p.Output() == ""; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("natter printed nothing within 60s")
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("natter did not end within 60s of Ctrl-C during its start\n%s", p.Output())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && !exit.Exited() {
		t.Fatalf("natter was ended by the signal (%v), not by itself\n%s", err, p.Output())
	}
	if out := p.Output(); !strings.Contains(out, "start interrupted (interrupt)") && !strings.Contains(out, `"msg":"stopped cleanly"`) {
		t.Fatalf("natter neither ended its start nor stopped cleanly:\n%s", out)
	}
}
