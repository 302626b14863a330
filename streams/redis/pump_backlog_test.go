package redis

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// TestPumpBacklogKeepsOrderAndLetsGo fills a pump past its channel: it
// holds exactly its size, in order, drops the rest and then owes one reset;
// once the pipeline has read everything the backlog's memory is let go.
func TestPumpBacklogKeepsOrderAndLetsGo(t *testing.T) {
	const size, burst = 100, 500 // size > handSlots: most wait in the backlog
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	p := newPump(size, dropped)
	defer p.close()
	p.offer(streams.Event{Kind: streams.Ready})
	for i := 1; i < burst; i++ {
		p.offer(streams.Event{Name: "m", Key: string(rune(i))})
	}
	if got := int(testutil.ToFloat64(dropped)); got != burst-size {
		t.Fatalf("%d dropped, want %d", got, burst-size)
	}
	next := func() streams.Event {
		t.Helper()
		select {
		case it := <-p.ch:
			return it.V.(streams.Event)
		case <-time.After(5 * time.Second):
			t.Fatal("nothing came from the pump within 5 s")
			return streams.Event{}
		}
	}
	if ev := next(); ev.Kind != streams.Ready {
		t.Fatalf("first item %+v, want Ready", ev)
	}
	for i := 1; i < size; i++ {
		if ev := next(); ev.Key != string(rune(i)) {
			t.Fatalf("item %d is %q, want %q", i, ev.Key, string(rune(i)))
		}
	}
	if ev := next(); ev.Kind != streams.Gap || ev.Code != streams.ResetOverflow {
		t.Fatalf("after the queue %+v, want an overflow Gap", ev)
	}
	// The forwarder may still be on its way out after its last send.
	testkit.Eventually(t, "the backlog let go after draining", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.backlog == nil && !p.moving
	})
}

// TestPumpClosesWithBacklog closes a pump whose backlog nobody reads: the
// forwarding goroutine ends (goleak checks) and the pipeline's channel is
// closed after what was already in it.
func TestPumpClosesWithBacklog(t *testing.T) {
	p := newPump(10*handSlots, prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"}))
	for i := 0; i < 2*handSlots; i++ {
		p.offer(streams.Event{Name: "m"})
	}
	p.close()
	n := 0
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-p.ch:
			if !ok {
				if n < handSlots || n > 2*handSlots {
					t.Fatalf("%d items before the end, want %d to %d", n, handSlots, 2*handSlots)
				}
				return
			}
			n++
		case <-deadline:
			t.Fatal("the pump's channel was not closed within 5 s")
		}
	}
}
