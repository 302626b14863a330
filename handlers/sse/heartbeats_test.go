package sse

import (
	"testing"
	"time"
)

// slotted counts the clients on the wheel, checking its links.
func slotted(t *testing.T, h *heartbeats) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for s, c := range h.slots {
		var prev *client
		for ; c != nil; prev, c = c, c.hbNext {
			if c.hbPrev != prev || c.hbSlot != int32(s) {
				t.Fatalf("slot %d: broken links", s)
			}
			n++
		}
	}
	return n
}

// A turn makes due the clients of its slot that have been idle for a
// period, and moves the others on to a period after their last write.
func TestHeartbeatsTurn(t *testing.T) {
	h := &heartbeats{period: 16 * time.Millisecond, tick: time.Millisecond}
	now := nanotime()
	idle, busy, later := &client{}, &client{}, &client{}
	idle.lastWrite.Store(now - int64(time.Second))
	busy.lastWrite.Store(now - int64(10*time.Millisecond))
	later.lastWrite.Store(now)
	for _, c := range []*client{idle, busy, later} {
		h.insert(c, 0)
	}
	h.insert(&client{}, 3) // another slot: not this turn's
	due := h.turn(nil)
	if len(due) != 1 || due[0] != idle {
		t.Fatalf("due %v, want the idle client only", due)
	}
	if h.cur != 1 {
		t.Fatalf("the wheel is at %d, want 1", h.cur)
	}
	// The idle one waits a whole period (back to slot 0), the busy one
	// the rest of its period (6 ms or a little less: slot 6 or 7).
	if idle.hbSlot != 0 || busy.hbSlot < 6 || busy.hbSlot > 7 || later.hbSlot != 0 {
		t.Fatalf("slots: idle %d, busy %d, later %d", idle.hbSlot, busy.hbSlot, later.hbSlot)
	}
	if n := slotted(t, h); n != 4 {
		t.Fatalf("%d clients on the wheel, want 4", n)
	}
	h.remove(busy)
	h.remove(busy) // harmless
	h.remove(idle)
	if n := slotted(t, h); n != 2 || busy.hbSlot != -1 {
		t.Fatalf("%d clients on the wheel after two removals, want 2", n)
	}
}

// Clients leave the wheel when they close, whichever way.
func TestHeartbeatsForgetClosedClients(t *testing.T) {
	k := newSink(t, SinkOptions{Heartbeat: 20 * time.Millisecond})
	var peers []*peer
	for range 20 {
		peers = append(peers, open(t, k, SlowDisconnect, nil, false))
	}
	if n := slotted(t, k.heartbeats); n != 20 {
		t.Fatalf("%d clients on the wheel, want 20", n)
	}
	for _, p := range peers[:10] {
		if b := p.block(); b != ": ping\n\n" {
			t.Fatalf("got %q, want a ping", b)
		}
		p.recv.close("test")
	}
	k.Drop("test")
	if n := slotted(t, k.heartbeats); n != 0 {
		t.Fatalf("%d clients left on the wheel", n)
	}
}
