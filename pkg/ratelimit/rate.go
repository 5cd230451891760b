// Package ratelimit holds natter's per-client limits: token buckets per key (a client address,
// a handle, an account) and a failed-attempts window per key, each remembering a bounded number
// of keys. The HTTP API and the gateway both limit with it (see docs/security.md).
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rate is a token bucket: N requests at once, refilled at N per Per. The zero Rate means "the
// default" where a default exists and "no limit" elsewhere; Off lifts a limit. It is a
// flag.Value: "20/1h", "off".
type Rate struct {
	N   int
	Per time.Duration
}

// Off is the Rate that limits nothing.
var Off = Rate{N: -1}

// ParseRate reads "N/duration" (N ≥ 1, duration > 0, e.g. "30/1h", "300/1m") or "off".
func ParseRate(s string) (Rate, error) {
	if s == "off" {
		return Off, nil
	}
	ns, ds, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/duration (e.g. 30/1h) or off", s)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("rate %q: count must be a whole number ≥ 1", s)
	}
	per, err := time.ParseDuration(ds)
	if err != nil || per <= 0 {
		return Rate{}, fmt.Errorf("rate %q: period must be a positive duration (e.g. 1m)", s)
	}
	return Rate{N: n, Per: per}, nil
}

// Set implements flag.Value.
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Rate) String() string {
	switch {
	case r.IsOff():
		return "off"
	case r == Rate{}:
		return ""
	}
	return fmt.Sprintf("%d/%s", r.N, shortDuration(r.Per))
}

// IsOff reports whether r is Off.
func (r Rate) IsOff() bool { return r.N < 0 }

// Validate checks a Rate set by hand (ParseRate's are valid); name says which in the error.
func (r Rate) Validate(name string) error {
	if r.N > 0 && r.Per <= 0 {
		return fmt.Errorf("%s rate %d per %s: period must be positive", name, r.N, r.Per)
	}
	return nil
}

// shortDuration drops time.Duration's zero tails: 1h, 1m, 90s rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// RetryAfter is d in whole seconds, rounded up, at least 1: the value of a Retry-After header.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
