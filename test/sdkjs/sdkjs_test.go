// Package sdkjs runs the TypeScript SDK's tests (sdk/js, node's test runner) against the real
// natter binary, so that `make test` covers the SDK: it builds natter, installs the SDK's
// development dependencies from its package-lock.json if node_modules is missing, compiles the
// SDK with tsc and runs `node --test`. The node tests start and stop natter themselves
// (sdk/js/test/harness.mjs) from the binary named by NATTER_BIN.
package sdkjs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTypeScriptSDK(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required for the TypeScript SDK's tests: install Node.js 18 or newer (apt-get install nodejs npm; .ci/run does)", tool)
		}
	}
	sdk, err := filepath.Abs(filepath.Join("..", "..", "sdk", "js"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// Without -race unless NATTER_SDKJS_RACE=1: these tests are about the SDK (the Go suites run
	// the server under the race detector), and bcrypt under -race made the node run 10 times
	// slower here (about 220 s instead of 20 s on a loaded 2-core machine).
	bin := filepath.Join(t.TempDir(), "natter")
	args := []string{"build", "-o", bin}
	if os.Getenv("NATTER_SDKJS_RACE") == "1" {
		args = append(args, "-race")
	}
	run(ctx, t, "", nil, "go", append(args, "github.com/natter-chat/natter/services/cmd/natter")...)

	if _, err := os.Stat(filepath.Join(sdk, "node_modules")); err != nil {
		run(ctx, t, sdk, nil, "npm", "ci", "--no-audit", "--no-fund")
	}
	run(ctx, t, sdk, nil, "npm", "run", "build")
	// The web client's sources are bundled by esbuild, which does not check types: the SDK's
	// TypeScript checks them here (services/web/tsconfig.json), so a type error fails make test.
	run(ctx, t, filepath.Join(sdk, "..", "..", "services", "web"), nil, filepath.Join(sdk, "node_modules", ".bin", "tsc"), "-p", "tsconfig.json", "--noEmit")

	tests, err := filepath.Glob(filepath.Join(sdk, "test", "*.test.mjs"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no test files in %s/test: %v", sdk, err)
	}
	nodeArgs := []string{"--test", "--test-reporter=spec"}
	// node 20.10+ has a browser-like global WebSocket behind this flag (node 22 by default); the
	// tests fall back to the ws package where there is none (node 18).
	if exec.CommandContext(ctx, "node", "--experimental-websocket", "-e", "").Run() == nil {
		nodeArgs = append([]string{"--experimental-websocket"}, nodeArgs...)
	}
	out := run(ctx, t, sdk, []string{"NATTER_BIN=" + bin}, "node", append(nodeArgs, tests...)...)
	t.Logf("node --test:\n%s", tail(out, 40))
}

// run runs a command and fails the test with its output if it fails.
func run(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v after %s\n%s", name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), out.String())
	}
	t.Logf("%s %s: %s", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
