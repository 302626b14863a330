package sse

import (
	"sync"
	"time"
)

// wheelSlots is how many slots one heartbeat period is cut into: a client
// is pinged between one period and one slot more after its last write.
const wheelSlots = 16

// minTick bounds how often the wheel turns, whatever the heartbeat.
const minTick = time.Millisecond

// heartbeats is the sink's schedule of heartbeats: a timing wheel of
// slots, each a list of the clients due in it, turned by one goroutine.
// An idle stream costs two pointers in a list instead of a timer of its
// own, and a write costs nothing here: the wheel reads when the client
// last wrote as it comes round, and moves it on if that was recent.
type heartbeats struct {
	period, tick time.Duration
	done         chan struct{}
	wg           sync.WaitGroup
	stopping     sync.Once

	mu    sync.Mutex
	slots [wheelSlots]*client // heads of the lists (client.hbNext)
	cur   int                 // the slot the wheel turns to next
}

func newHeartbeats(period time.Duration) *heartbeats {
	h := &heartbeats{period: period, tick: max(period/wheelSlots, minTick), done: make(chan struct{})}
	h.wg.Add(1)
	go h.run()
	return h
}

// ahead is how many slots ahead of the current one d falls: 1 to
// wheelSlots (a whole turn).
func (h *heartbeats) ahead(d time.Duration) int {
	n := int((d + h.tick - 1) / h.tick)
	return min(max(n, 1), wheelSlots)
}

// add schedules c's heartbeat one period from now.
func (h *heartbeats) add(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.insert(c, (h.cur+h.ahead(h.period)-1)%wheelSlots)
}

// remove takes c off the wheel. It is safe to call more than once.
func (h *heartbeats) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.hbSlot < 0 {
		return
	}
	if c.hbPrev != nil {
		c.hbPrev.hbNext = c.hbNext
	} else {
		h.slots[c.hbSlot] = c.hbNext
	}
	if c.hbNext != nil {
		c.hbNext.hbPrev = c.hbPrev
	}
	c.hbPrev, c.hbNext, c.hbSlot = nil, nil, -1
}

// insert puts c at the head of slot s. Called with h.mu held.
func (h *heartbeats) insert(c *client, s int) {
	c.hbSlot = int32(s)
	c.hbPrev = nil
	c.hbNext = h.slots[s]
	if c.hbNext != nil {
		c.hbNext.hbPrev = c
	}
	h.slots[s] = c
}

func (h *heartbeats) run() {
	defer h.wg.Done()
	t := time.NewTicker(h.tick)
	defer t.Stop()
	var due []*client
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		due = h.turn(due[:0])
		// Outside h.mu: a beat may close its client, which removes it.
		for i, c := range due {
			c.beat()
			due[i] = nil
		}
	}
}

// turn takes the current slot's clients: those idle for a period are due
// (and wait a period for their next beat), the others move on to a period
// after their last write.
func (h *heartbeats) turn(due []*client) []*client {
	now := nanotime()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.cur
	h.cur = (s + 1) % wheelSlots
	c := h.slots[s]
	h.slots[s] = nil
	for c != nil {
		next := c.hbNext
		wait := h.period
		if idle := time.Duration(now - c.lastWrite.Load()); idle < h.period {
			wait -= idle
		} else {
			due = append(due, c)
		}
		h.insert(c, (s+h.ahead(wait))%wheelSlots)
		c = next
	}
	return due
}

// close stops the wheel. It is safe to call more than once.
func (h *heartbeats) close() {
	h.stopping.Do(func() { close(h.done) })
	h.wg.Wait()
}
