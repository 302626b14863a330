package limit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxRateAddrs bounds the addresses whose rate is remembered: about 10 MB.
const maxRateAddrs = 1 << 16

// rates paces new streams per client address with a token bucket each.
// A bucket that has refilled to its burst is the same as a new one, so it
// is forgotten at no loss; the map is swept for those once per refill time.
// Past maxRateAddrs addresses (many addresses, or spoofed ones through a
// careless proxy) an arbitrary one is forgotten, which gives it a fresh
// burst but keeps memory bounded.
type rates struct {
	limit  rate.Limit
	burst  int
	refill time.Duration // from empty to full: how long an idle bucket matters
	max    int

	mu     sync.Mutex
	byAddr map[netip.Addr]*rate.Limiter
	swept  time.Time
}

func newRates(perSecond float64, burst, max int) *rates {
	return &rates{
		limit: rate.Limit(perSecond), burst: burst, max: max,
		refill: time.Duration(float64(burst) / perSecond * float64(time.Second)),
		byAddr: make(map[netip.Addr]*rate.Limiter),
	}
}

// allow takes n tokens (at least 1, at most a burst) of addr's bucket at
// now; when there are not enough it returns how long until there will be.
func (r *rates) allow(addr netip.Addr, now time.Time, n int) (bool, time.Duration) {
	n = min(max(n, 1), r.burst)
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) >= r.refill {
		r.sweep(now)
	}
	l := r.byAddr[addr]
	if l == nil {
		if len(r.byAddr) >= r.max {
			for a := range r.byAddr { // Go's map order: an arbitrary one
				delete(r.byAddr, a)
				break
			}
		}
		l = rate.NewLimiter(r.limit, r.burst)
		r.byAddr[addr] = l
	}
	if l.AllowN(now, n) {
		return true, 0
	}
	wait := time.Duration((float64(n) - l.TokensAt(now)) / float64(r.limit) * float64(time.Second))
	return false, wait
}

// sweep forgets the buckets that are full again.
func (r *rates) sweep(now time.Time) {
	r.swept = now
	for a, l := range r.byAddr {
		if l.TokensAt(now) >= float64(r.burst) {
			delete(r.byAddr, a)
		}
	}
}

func (r *rates) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byAddr)
}
