package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Stage is one step of natter's pipeline as natter's own metrics saw it during a phase's
// measured window: how many it handled per second and how long each took on average.
type Stage struct {
	Name   string  `json:"name"`
	PerSec float64 `json:"per_sec"`
	AvgMs  float64 `json:"avg_ms"`
}

// stageSeries maps natter's Prometheus histograms to stage names.
var stageSeries = []struct{ name, series string }{
	{"gateway publish → JetStream ack", "natter_gateway_publish_seconds"},
	{"persister (store write per event)", `natter_consumer_handle_seconds{consumer="persister"}`},
	{"fanout (route per event)", `natter_consumer_handle_seconds{consumer="fanout"}`},
}

// scrape reads the _sum and _count of the stage histograms from a /metrics endpoint.
func scrape(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "natter_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		for _, suffix := range []string{"_sum", "_count"} {
			base, labels, _ := strings.Cut(name, "{")
			if !strings.HasSuffix(base, suffix) {
				continue
			}
			key := strings.TrimSuffix(base, suffix)
			if labels != "" {
				key += "{" + labels
			}
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				out[key+suffix] = v
			}
		}
	}
	return out, sc.Err()
}

// stages turns two scrapes secs apart into per-stage rates and mean times.
func stages(before, after map[string]float64, secs float64) []Stage {
	var out []Stage
	for _, s := range stageSeries {
		n := after[s.series+"_count"] - before[s.series+"_count"]
		sum := after[s.series+"_sum"] - before[s.series+"_sum"]
		if n <= 0 {
			continue
		}
		out = append(out, Stage{Name: s.name, PerSec: n / secs, AvgMs: sum / n * 1000})
	}
	return out
}
