package streams

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff paces retries against something that failed (Redis, a server):
// each wait doubles from Min up to Max, with full jitter, so that many
// streams losing one Redis together do not come back in lockstep. The zero
// value waits 50 ms to 2 s; Reset after a success.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns how long to wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 50 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 2*time.Second)
	}
	d := lo << min(b.n, 20)
	if d > hi || d <= 0 {
		d = hi
	} else {
		b.n++
	}
	// Half fixed, half random: never a zero wait, never a synchronised one.
	return d/2 + rand.N(d/2+1)
}

// Reset starts the next series of waits from Min again.
func (b *Backoff) Reset() { b.n = 0 }

// Wait sleeps for Next; it returns false when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
