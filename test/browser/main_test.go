// Package browser drives the web client (services/web) in real Chromium against the real natter
// binary: two people in two browsers sign up and chat, one goes offline and comes back. It also
// checks that the committed bundle services/web/static/app.js is what its sources build to.
//
// Chromium is required: the test fails when it cannot find it (CI installs Debian's chromium).
// NATTER_CHROMIUM names the binary; otherwise chromium, chromium-browser, google-chrome and
// google-chrome-stable are looked up in PATH. Screenshots of every step go to
// NATTER_BROWSER_ARTIFACTS/<test name>, by default test/browser/artifacts/<test name>.
package browser

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"

	"github.com/natter-chat/natter/test/natterbin"
)

var natterBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := natterbin.Build("natter-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natterBin = bin
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	cleanup()
	os.Exit(code)
}

// chromium finds the browser, or fails the test: CI must run it, never skip it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NATTER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install it (apt-get install -y chromium, as .ci/run does) or set NATTER_CHROMIUM")
	return ""
}
