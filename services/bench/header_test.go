package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestTableHeaderNamesOnlyWhatRan: the table's header describes the scenarios that ran, not
// the settings of those that did not.
func TestTableHeaderNamesOnlyWhatRan(t *testing.T) {
	cfg := DefaultConfig()
	settings := Settings{Users: cfg.Users, Devices: cfg.Devices, Window: cfg.Window, MsgSize: cfg.MsgSize, GroupSize: cfg.GroupSize,
		Groups: cfg.Groups, IdleConns: cfg.IdleConns, Duration: cfg.Duration.String(), Warmup: cfg.Warmup.String()}
	oneToOne := func(mode string) *LoadResult {
		return &LoadResult{Name: Scenario1to1 + " " + mode, Scenario: Scenario1to1, Mode: mode, Members: 2, Devices: 1, TargetRate: 500}
	}
	for _, c := range []struct {
		name      string
		rep       *Report
		want, not []string
	}{
		{"1to1 only", &Report{Settings: settings, Phases: []*LoadResult{oneToOne(ModeFlat), oneToOne(ModePaced)}},
			[]string{"1to1 (flat, paced)", "200 users × 1 device", "100-char messages", "window 8", "5s measured"},
			[]string{"group", "idle", "memory"}},
		{"memory only", &Report{Settings: settings, Memory: &MemResult{Server: "natter", Held: 8000, Requested: 8000}},
			[]string{"memory", "8000 idle connections"},
			[]string{"1to1", "group", "users", "window", "measured per phase"}},
		{"group flat-out only", &Report{Settings: settings, Phases: []*LoadResult{{Name: "group flat-out", Scenario: ScenarioGroup,
			Mode: ModeFlat, Members: 100, Devices: 1}}},
			[]string{"group (flat)", "1 group of 100 members", "window 8"},
			[]string{"1to1", "paced", "idle", "memory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.rep.finish()
			var buf bytes.Buffer
			if err := c.rep.WriteTable(&buf); err != nil {
				t.Fatal(err)
			}
			header, _, _ := strings.Cut(buf.String(), "\n\n")
			for _, w := range c.want {
				if !strings.Contains(header, w) {
					t.Errorf("header lacks %q:\n%s", w, header)
				}
			}
			for _, n := range c.not {
				if strings.Contains(header, n) {
					t.Errorf("header names %q, which did not run:\n%s", n, header)
				}
			}
		})
	}
}
