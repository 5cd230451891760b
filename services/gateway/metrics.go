package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections prometheus.Gauge
	closes      *prometheus.CounterVec
	framesIn    *prometheus.CounterVec
	framesOut   prometheus.Counter
	writes      prometheus.Counter
	sends       *prometheus.CounterVec
	publish     prometheus.Histogram

	deliveryLag         prometheus.Gauge
	backpressureWaits   prometheus.Counter
	backpressureSeconds prometheus.Counter
	requestNotices      *prometheus.CounterVec
	upgradesRefused     *prometheus.CounterVec
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
		writes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "socket_writes_total", Help: "Writes to sockets, each of one or more frames (or part of one)."}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "sends_total", Help: "Sends, by outcome."}, []string{"outcome"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "publish_seconds", Help: "Send publish to stream acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}),
		deliveryLag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "delivery_lag_events", Help: "How far the fanout partition delivering to this gateway trailed its latest send when last looked at under load."}),
		backpressureWaits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "backpressure_waits_total", Help: "Sends held because delivery to this gateway was too far behind."}),
		backpressureSeconds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "backpressure_seconds_total", Help: "Time sends were held because delivery to this gateway was too far behind."}),
		requestNotices: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "request_notices_total", Help: "Request frames queued to sockets of this gateway, by state."}, []string{"state"}),
		upgradesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natter", Subsystem: "gateway",
			Name: "upgrades_refused_total", Help: "WebSocket upgrades refused (429) for their client address, by reason: addr_rate, addr_sockets."}, []string{"reason"}),
	}
	for _, r := range []string{refusedAddrRate, refusedAddrSockets} {
		m.upgradesRefused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.closes, m.framesIn, m.framesOut, m.writes, m.sends, m.publish, m.deliveryLag, m.backpressureWaits, m.backpressureSeconds, m.requestNotices, m.upgradesRefused)
	}
	return m
}
