package main

import (
	"math"
	"testing"
	"time"
)

// TestBucketRoundTrip checks that every value lands in a bucket whose
// middle is within the promised ~3% (exact below 64 µs).
func TestBucketRoundTrip(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<22; v += 1 + v/1000 {
		i := bucket(v)
		if i < prev {
			t.Fatalf("bucket(%d) = %d, below bucket %d of a smaller value", v, i, prev)
		}
		prev = i
		got := bucketValue(i)
		if v < histSub && got != float64(v) {
			t.Fatalf("bucketValue(bucket(%d)) = %g, want exact", v, got)
		}
		if rel := math.Abs(got-float64(v)) / float64(max(v, 1)); rel > 0.032 {
			t.Fatalf("bucketValue(bucket(%d)) = %g, %.1f%% off", v, got, rel*100)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(c.q)
		if math.Abs(float64(got-c.want)) > 0.032*float64(c.want) {
			t.Errorf("quantile(%g) = %v, want about %v", c.q, got, c.want)
		}
	}
	if h.maxLatency() != time.Millisecond {
		t.Errorf("max = %v, want 1ms", h.maxLatency())
	}
}
