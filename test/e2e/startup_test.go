package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartupErrorsAreOneLine: natter run that cannot start says why in one line, the last on
// stderr, and exits non-zero within seconds; no fx dependency-injection chain, no stack trace.
func TestStartupErrorsAreOneLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string // in the last line of stderr
	}{
		{"api port in use", nil, []string{"--api-addr", addr}, []string{"api", addr, "address already in use"}},
		{"ws port in use", nil, []string{"--ws-addr", addr}, []string{"gateway", addr, "address already in use"}},
		{"metrics port in use", nil, []string{"--metrics-addr", addr}, []string{"metrics", addr, "address already in use"}},
		{"nats port in use", nil, []string{"--nats-port", port}, []string{"nats", addr, "address already in use"}},
		{"short token secret", []string{"NATTER_JWT_SECRET=too-short"}, nil, []string{"NATTER_JWT_SECRET", "9 bytes", "at least 32"}},
		{"fcm project without credentials", nil, []string{"--fcm-project", "my-chat-app"}, []string{"--fcm-project", "--fcm-credentials"}},
		{"origin without a scheme", nil, []string{"--allowed-origins", "chat.example.com"}, []string{"--allowed-origins", "chat.example.com", "scheme://host"}},
		{"any origin among others", []string{"NATTER_ALLOWED_ORIGINS=*,https://chat.example.com"}, nil, []string{"--allowed-origins", "cannot be listed with others"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Free ports everywhere but the one the case occupies (a later flag wins).
			args := append([]string{"run", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0",
				"--nats-port", "-1", "--metrics-addr", "127.0.0.1:0"}, c.args...)
			code, stderr, took := runToExit(t, c.env, args...)
			t.Logf("exit %d after %s", code, took.Round(time.Millisecond))
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if code == 0 {
				t.Errorf("exit status 0")
			}
			if took > 10*time.Second {
				t.Errorf("took %s to exit", took)
			}
			if !strings.HasPrefix(last, "natter: ") {
				t.Errorf("last line of stderr is not natter's error: %q", last)
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("last line %q does not name %q", last, w)
				}
			}
			for _, noise := range []string{"goroutine ", "fx.", "could not build", "received non-nil error", "\x1b"} {
				if strings.Contains(stderr, noise) {
					t.Errorf("stderr has %q", noise)
				}
			}
			for _, l := range lines[:len(lines)-1] {
				if strings.HasPrefix(l, "\t") || strings.Contains(l, "ERROR") {
					t.Errorf("stderr has a stack trace or a second error line: %q", l)
				}
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr)
			}
		})
	}
}

// runToExit runs the natter binary to its exit, without the caller's NATTER_* environment, and
// returns its exit status, standard error and run time.
func runToExit(t *testing.T, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, natterBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATTER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String(), took
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), stderr.String(), took
	default:
		t.Fatalf("natter %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		return 0, "", 0
	}
}
