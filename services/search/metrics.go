package search

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natter-chat/natter/services/search/wire"
)

// Metrics are the search service's Prometheus series.
type Metrics struct {
	indexed   prometheus.Counter
	skipped   prometheus.Counter
	batch     prometheus.Histogram
	pending   prometheus.Gauge
	lagSeqs   prometheus.Gauge
	indexedTo prometheus.Gauge
	documents prometheus.Gauge
	queries   *prometheus.CounterVec
	query     prometheus.Histogram
}

// NewMetrics registers the series on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		indexed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natter", Subsystem: "search", Name: "indexed_total",
			Help: "Messages written to the search index (a redelivered one counts again)."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natter", Subsystem: "search", Name: "skipped_total",
			Help: "Edits search did not index: their message was deleted, or is not in the index."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "natter", Subsystem: "search", Name: "commit_seconds",
			Help: "Time to commit one batch to the index.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "search", Name: "pending_events",
			Help: "CHAT events the search consumer has not indexed and acknowledged yet: the lag in events."}),
		lagSeqs: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "search", Name: "lag_seqs",
			Help: "CHAT's last seq minus the search consumer's ack floor."}),
		indexedTo: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "search", Name: "indexed_seq",
			Help: "The search consumer's ack floor: every CHAT event at or below it is indexed."}),
		documents: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "search", Name: "documents",
			Help: "Messages in the search index."}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "search", Name: "queries_total",
			Help: "Search requests answered, by outcome (ok, bad_query, busy, error)."}, []string{"outcome"}),
		query: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "natter", Subsystem: "search", Name: "query_seconds",
			Help: "Time to answer one query in the search process.", Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.indexed, m.skipped, m.batch, m.pending, m.lagSeqs, m.indexedTo, m.documents, m.queries, m.query} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) observe(st wire.Status) {
	m.pending.Set(float64(st.Pending))
	m.indexedTo.Set(float64(st.IndexedSeq))
	m.documents.Set(float64(st.Documents))
	if st.HeadSeq > st.IndexedSeq {
		m.lagSeqs.Set(float64(st.HeadSeq - st.IndexedSeq))
	} else {
		m.lagSeqs.Set(0)
	}
}
