package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections prometheus.Gauge
	closes      *prometheus.CounterVec
	framesIn    *prometheus.CounterVec
	framesOut   prometheus.Counter
	sends       *prometheus.CounterVec
	publish     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "connections", Help: "Open WebSocket connections."}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "closes_total", Help: "Connections closed by the server, by close code."}, []string{"code"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "frames_in_total", Help: "Client frames, by type or error code."}, []string{"type"}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "frames_out_total", Help: "Frames written to clients."}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "sends_total", Help: "Sends, by outcome."}, []string{"outcome"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "publish_seconds", Help: "Send publish to stream acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.closes, m.framesIn, m.framesOut, m.sends, m.publish)
	}
	return m
}
