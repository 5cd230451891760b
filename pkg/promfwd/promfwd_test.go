package promfwd

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// other is the other process: a registry with one family to keep, one to rename, and Go's.
func other(t *testing.T) *httptest.Server {
	reg := prometheus.NewRegistry()
	indexed := prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_search_indexed_total", Help: "Messages indexed."})
	indexed.Add(7)
	reg.MustRegister(indexed, collectors.NewGoCollector())
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "process_resident_memory_bytes", Help: "RSS."}, func() float64 { return 1234 }))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv
}

func rename(name string) (string, bool) {
	switch {
	case strings.HasPrefix(name, "natter_"):
		return name, true
	case name == "process_resident_memory_bytes":
		return "natter_search_process_resident_memory_bytes", true
	}
	return "", false
}

// served is what this process's /metrics serves with g beside its own registry.
func served(t *testing.T, g *Gatherer) string {
	own := prometheus.NewRegistry()
	own.MustRegister(collectors.NewGoCollector()) // the same Go families as the other: left out of g
	srv := httptest.NewServer(promhttp.HandlerFor(prometheus.Gatherers{own, g}, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTheOtherProcessesFamiliesAreServedAsTheFilterSays(t *testing.T) {
	o := other(t)
	g := &Gatherer{URL: func() string { return o.URL }, Rename: rename, UpName: "natter_search_process_up", UpHelp: "1 when read."}
	out := served(t, g)
	for _, want := range []string{"natter_search_indexed_total 7", "natter_search_process_resident_memory_bytes 1234", "natter_search_process_up 1"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("served metrics lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nprocess_resident_memory_bytes") {
		t.Errorf("the other's family was served under its own name as well")
	}
	if n, err := testutil.GatherAndCount(g); err != nil || n != 3 {
		t.Fatalf("gathered %d families (%v), want 3", n, err)
	}
}

func TestAnUnreachableProcessIsDownNotAnError(t *testing.T) {
	o := other(t)
	url := o.URL
	o.Close()
	for _, u := range []string{url, ""} {
		g := &Gatherer{URL: func() string { return u }, Rename: rename, UpName: "natter_search_process_up", UpHelp: "1 when read."}
		out := served(t, g)
		if !strings.Contains(out, "natter_search_process_up 0\n") || strings.Contains(out, "natter_search_indexed_total") {
			t.Fatalf("URL %q: served\n%s", u, out)
		}
	}
}
