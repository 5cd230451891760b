// Package promfwd serves another process's Prometheus metrics as part of this process's: a
// Gatherer that reads a /metrics URL at every scrape and keeps the families a filter selects.
// natter run uses it for the search process it starts, so that one /metrics shows both.
package promfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// Timeout bounds one read of the other process's metrics.
const Timeout = 2 * time.Second

// Gatherer reads the metrics at URL() (an empty URL: not running now) and keeps those Rename
// gives a name for. It adds UpName, a gauge: 1 when the read succeeded, 0 when not. A failed
// read is not an error of the scrape: this process's own metrics are still served.
type Gatherer struct {
	URL func() string
	// Rename returns the name a family is served under, or false to leave it out.
	Rename func(name string) (string, bool)
	UpName string
	UpHelp string
}

var _ prometheus.Gatherer = (*Gatherer)(nil)

// Gather implements prometheus.Gatherer.
func (g *Gatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := g.read()
	up := 1.0
	if err != nil {
		fams, up = nil, 0
	}
	return append(fams, &dto.MetricFamily{Name: proto.String(g.UpName), Help: proto.String(g.UpHelp), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(up)}}}}), nil
}

func (g *Gatherer) read() ([]*dto.MetricFamily, error) {
	url := g.URL()
	if url == "" {
		return nil, errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	var out []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		if name, ok := g.Rename(mf.GetName()); ok {
			mf.Name = proto.String(name)
			out = append(out, mf)
		}
	}
}
