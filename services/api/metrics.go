package api

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's request metrics, labelled by route pattern (never the raw path, so ids
// do not explode the label space); requests that match no route count as "unmatched".
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rejected *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "natter", Subsystem: "api", Name: "requests_total",
		Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"}))
	if err != nil {
		return nil, err
	}
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "natter", Subsystem: "api", Name: "request_duration_seconds",
		Help:    "HTTP request handling time, by route pattern and method.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"}))
	if err != nil {
		return nil, err
	}
	rejected, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "natter", Subsystem: "api", Name: "rejected_total",
		Help: "Requests refused before their work by a rate limit or a full password-hashing semaphore, by reason (signup_addr, login_addr, handle, refresh_addr, login_failures, write_addr, write_account, hash_busy).",
	}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	return &metrics{requests: requests, duration: duration, rejected: rejected}, nil
}

// register registers c, or returns the identical collector already registered (a second server
// on the same registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("api: register metrics: %w", err)
	}
	return c, nil
}

type userKey struct{}

// observe wraps every request: it bounds the request's work by Config.RequestTimeout, turns
// panics and returned errors into error answers, and records metrics.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)

	own := c.Route()
	if err := next(c); err != nil {
		s.writeError(c, err)
	}
	if s.metrics == nil {
		return nil
	}
	route := "unmatched"
	if r := c.Route(); r != own {
		route = r.Path
	}
	status := strconv.Itoa(c.Response().StatusCode())
	s.metrics.requests.WithLabelValues(route, c.Method(), status).Inc()
	s.metrics.duration.WithLabelValues(route, c.Method()).Observe(time.Since(start).Seconds())
	return nil
}

// next runs the rest of the chain, turning a panic into an error (answered as "internal").
func next(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}
