package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stepTimeout bounds one step: a wait for the page to show something, or one action.
const stepTimeout = 30 * time.Second

// browser is one Chromium process with its own profile: one person's browser.
type browser struct {
	t     *testing.T
	name  string
	ctx   context.Context
	shots string // directory for screenshots
	step  *int   // shared step counter, so that the two browsers' screenshots sort in order
	start time.Time
}

// artifacts is the directory for this test's screenshots, emptied first.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NATTER_BROWSER_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newBrowser(t *testing.T, name, shots string, step *int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 720),
	)
	// Chromium now and then dies while starting on these machines, before DevTools is up and
	// before the test did anything (a crash report, no message): that is retried, twice at most.
	var ctx context.Context
	for attempt := 1; ; attempt++ {
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		c, cancel := chromedp.NewContext(alloc)
		// The first Run starts the browser; it must not carry a timeout (that would end the browser).
		err := chromedp.Do(c, chromedp.Navigate("about:blank"))
		if err == nil {
			t.Cleanup(func() {
				cancel()
				cancelAlloc()
			})
			ctx = c
			break
		}
		cancel()
		cancelAlloc()
		if attempt == 3 || !strings.Contains(err.Error(), "chrome failed to start") {
			t.Fatalf("%s: start chromium: %v", name, err)
		}
		t.Logf("%s: chromium died while starting (attempt %d), starting it again: %v", name, attempt, err)
	}
	return &browser{t: t, name: name, ctx: ctx, shots: shots, step: step, start: time.Now()}
}

// do runs actions, failing the test with what was being done.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed")
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// until waits for a JavaScript expression to be true.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		if ctx.Err() == nil && navigated(err) {
			continue // the page reloaded under the poll (it does when it comes back from the back/forward cache)
		}
		b.shot("failed")
		b.t.Fatalf("%s: waiting until %s (%s): %v\npage: %s", b.name, what, expr, err, b.state())
	}
}

// navigated reports whether err is Chromium's answer to an evaluation in a page that a
// navigation or reload replaced meanwhile: the poll must start again in the new page.
func navigated(err error) bool {
	for _, m := range []string{"Cannot find context with specified id", "Execution context was destroyed", "Inspected target navigated or closed"} {
		if strings.Contains(err.Error(), m) {
			return true
		}
	}
	return false
}

// state describes what the page shows, for a failure message.
func (b *browser) state() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		connection: document.querySelector("#connection")?.textContent,
		chat: document.querySelector("#chat-title")?.textContent,
		history: document.querySelector("#history-status")?.textContent,
		error: document.querySelector("#chat-error")?.textContent,
		conversations: [...document.querySelectorAll("#conversations .conv-name")].map(e => e.textContent),
		messages: document.querySelectorAll("#messages li").length,
		last: [...document.querySelectorAll("#messages .text")].slice(-3).map(e => e.textContent.slice(0, 40)),
	})`))
	if err != nil {
		return "(not readable: " + err.Error() + ")"
	}
	return s
}

// click clicks the first element selector names, in the page itself, once there is one: lists
// are drawn anew when the page refreshes them, so a node chromedp resolved may be gone, or
// another in its place, by the time a mouse click lands.
func (b *browser) click(what, selector string) {
	b.t.Helper()
	b.until(what, `(() => {
		const e = document.querySelector(`+"`"+selector+"`"+`);
		if (!e) return false;
		e.click();
		return true;
	})()`)
}

// eval evaluates a JavaScript expression and decodes its JSON value into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify("+expr+")"))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		b.t.Fatalf("%s: evaluate %s: %s: %v", b.name, expr, s, err)
	}
}

// shot writes a screenshot of the page as NN-name-what.png.
func (b *browser) shot(what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("%s: screenshot %s: %v", b.name, what, err)
		return
	}
	*b.step++
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s-%s.png", *b.step, b.name, strings.ReplaceAll(what, " ", "-")))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Errorf("%s: %v", b.name, err)
	}
	b.t.Logf("%5.1fs %s", time.Since(b.start).Seconds(), filepath.Base(file))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
