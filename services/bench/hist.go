package bench

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits linear sub-buckets per power of two, so a
// recorded value is reported within 1/2^subBits (3%) of itself.
const subBits = 5

const (
	subCount = 1 << subBits
	nBuckets = (64 - subBits + 1) << subBits
)

// hist is a log-linear latency histogram (HdrHistogram's layout, fixed precision) over
// nanoseconds. The zero value is ready; it is not safe for concurrent use: each connection owns
// one and they are merged when a phase ends.
type hist struct {
	counts [nBuckets]uint64
	n      uint64
	max    uint64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1 // position of the top bit, >= subBits
	sub := (v >> (e - subBits)) & (subCount - 1)
	return (e-subBits+1)<<subBits | int(sub)
}

// bucketMid is a representative value (the middle) of bucket i.
func bucketMid(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	g := i >> subBits
	sub := uint64(i & (subCount - 1))
	lo := (subCount | sub) << (g - 1)
	return lo + (uint64(1)<<(g-1))/2
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q (0..1), or 0 with no samples.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketMid(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Latency summarises a latency distribution, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *hist) summary() Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{Count: h.n, P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)),
		P999: ms(h.quantile(0.999)), Max: ms(time.Duration(h.max))}
}
