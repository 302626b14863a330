package limit

import (
	"net/netip"
	"sync"
)

// clients counts open streams, in all and per client address. An address
// is in the map only while it has streams open, so the map is never larger
// than the number of open streams.
type clients struct {
	max, perAddr int

	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int
}

func newClients(max, perAddr int) *clients {
	return &clients{max: max, perAddr: perAddr, byAddr: make(map[netip.Addr]int)}
}

// acquire counts one more stream of addr; it says which limit refused it,
// if one did.
func (c *clients) acquire(addr netip.Addr) (refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.max > 0 && c.total >= c.max:
		return reasonClients
	case c.perAddr > 0 && c.byAddr[addr] >= c.perAddr:
		return reasonClientsPerAddr
	}
	c.total++
	c.byAddr[addr]++
	return ""
}

func (c *clients) release(addr netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if n := c.byAddr[addr] - 1; n > 0 {
		c.byAddr[addr] = n
	} else {
		delete(c.byAddr, addr)
	}
}

// counts returns the streams open in all and the addresses holding them.
func (c *clients) counts() (total, addrs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, len(c.byAddr)
}
