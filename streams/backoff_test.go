package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
)

func TestBackoffGrowsWithJitterWithinBounds(t *testing.T) {
	b := streams.Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for i, ceiling := range []time.Duration{10, 20, 40, 80, 80, 80} {
		ceiling *= time.Millisecond
		d := b.Next()
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("wait %d: %v, want within [%v, %v]", i, d, ceiling/2, ceiling)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want at most Min", d)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		c := streams.Backoff{Min: time.Second, Max: time.Second}
		seen[c.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 first waits took %d distinct values: no jitter", len(seen))
	}
	var zero streams.Backoff
	if d := zero.Next(); d < 25*time.Millisecond || d > 50*time.Millisecond {
		t.Fatalf("zero value's first wait %v, want 25-50ms", d)
	}
}

func TestBackoffWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := streams.Backoff{Min: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Fatal("Wait reported a full wait on an ended context")
	}
}
