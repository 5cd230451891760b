package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/natter-chat/natter/services/app"
	"github.com/natter-chat/natter/services/app/apptest"
)

// Profiles are served on the metrics address only when asked for (they show internals).
func TestProfilesAreServedOnlyWithPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := apptest.Start(t, func(c *app.Config) { c.MetricsAddr, c.Pprof = "127.0.0.1:0", on })
		base := "http://" + s.Run.Metrics.String()
		resp, err := http.Get(base + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		served := resp.StatusCode == http.StatusOK && strings.Contains(string(body), "goroutine profile:")
		if served != on {
			t.Errorf("pprof %v: GET /debug/pprof/goroutine answered %d (%.40q)", on, resp.StatusCode, body)
		}
		if resp, err := http.Get(base + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("pprof %v: /metrics: %v %v", on, resp, err)
		} else {
			resp.Body.Close()
		}
	}
}
