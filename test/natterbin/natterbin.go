// Package natterbin builds the natter binary for the tests that run it as a process (test/e2e,
// test/browser): with -race unless NATTER_E2E_RACE=0, into a temporary directory.
package natterbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds natter into a new temporary directory named after prefix and returns the
// binary's path and a function that removes the directory. go build's output goes to stdout
// and stderr.
func Build(prefix string) (string, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin := filepath.Join(dir, "natter")
	args := []string{"build", "-o", bin}
	if os.Getenv("NATTER_E2E_RACE") != "0" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/natter-chat/natter/services/cmd/natter")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("build natter: %w", err)
	}
	return bin, cleanup, nil
}
