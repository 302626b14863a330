package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records latencies in microseconds in log-linear buckets: exact
// below 64 µs, then 32 buckets per power of two (at most ~3% wide). It is
// shared by every client's reader and costs a fixed ~11 KiB however many
// clients and events a run has, where keeping every sample of 10,000
// clients × 1,000,000 events would not fit in memory. The maximum is kept
// exactly.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // µs
}

const (
	histSubBits = 6 // 64 exact values, then 32 buckets per octave
	histSub     = 1 << histSubBits
	histHalf    = histSub / 2
	histOctaves = 40 // up to 2^45 µs, far beyond any run
	histBuckets = histSub + histOctaves*histHalf
)

// bucket maps v (µs) to its bucket.
func bucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // ≥ 1
	i := histSub + (shift-1)*histHalf + int(v>>shift) - histHalf
	return min(i, histBuckets-1)
}

// bucketValue is the middle of bucket i, in µs.
func bucketValue(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	shift := (i-histSub)/histHalf + 1
	low := uint64((i-histSub)%histHalf+histHalf) << shift
	return float64(low) + float64(uint64(1)<<shift)/2
}

// record adds one latency; it is safe for concurrent use.
func (h *histogram) record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	h.counts[bucket(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile returns the q-quantile (0 < q ≤ 1) of what was recorded, to the
// bucket's precision; call it once recording has stopped.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			us := min(bucketValue(i), float64(h.max.Load()))
			return time.Duration(us * float64(time.Microsecond))
		}
	}
	return h.maxLatency()
}

// maxLatency is the largest latency recorded, exactly.
func (h *histogram) maxLatency() time.Duration {
	return time.Duration(h.max.Load()) * time.Microsecond
}
