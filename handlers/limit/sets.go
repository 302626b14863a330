package limit

import (
	"net/netip"
	"sync"
	"time"
)

// Named sets of subs (POST /api/sets) are kept in Redis, so their pace is
// bounded per client address: at most SetBurst at once, then one every
// SetEvery. With sets of at most 32 KiB living 10 minutes unused, one
// address can hold at most about 4 MB of Redis memory.
const (
	SetEvery = 5 * time.Second
	SetBurst = 10
)

// sets paces set creation, a bucket per address, created on first use.
type setRates struct {
	once sync.Once
	r    *rates
}

// AllowSet takes one set creation from the address of the request (peer,
// and X-Forwarded-For values from trusted proxies); a refusal says when to
// come back.
func (g *Gate) AllowSet(peer netip.Addr, forwarded [][]byte) error {
	g.sets.once.Do(func() {
		g.sets.r = newRates(float64(time.Second)/float64(SetEvery), SetBurst, maxRateAddrs)
	})
	addr := key(g.addrs.Client(peer, forwarded))
	if ok, wait := g.sets.r.allow(addr, time.Now(), 1); !ok {
		return g.refuse(reasonSets, wait)
	}
	return nil
}
