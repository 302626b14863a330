package sse

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// queuedTotal is the bytes all clients hold, as keyflux_queued_bytes reports it.
func queuedTotal(k *testSink) int { return int(k.opts.Metrics.queued.Load()) }

// Past MaxQueuedBytes the client furthest behind is handled first, by its
// own policy, even though another client's frame hit the budget: a
// disconnecting client is cut off at once (its write in flight too), the
// others keep their streams.
func TestBudgetCutsOffTheClientFurthestBehind(t *testing.T) {
	const budget = 2 << 20
	k := newSink(t, SinkOptions{QueueBytes: budget, MaxQueuedBytes: budget})
	// Writes of 500 KiB stay in flight: the small socket buffers take less.
	far := open(t, k, SlowDisconnect, nil, true)
	far.stall(500 << 10)
	if !far.recv.Send(sized(t, "far", 400<<10)) {
		t.Fatal("far: refused under the budget")
	}
	near := open(t, k, SlowDisconnect, nil, true)
	near.stall(500 << 10)
	if !near.recv.Send(sized(t, "near", 100<<10)) {
		t.Fatal("near: refused under the budget")
	}
	reader := open(t, k, SlowDisconnect, nil, false)
	if got := queuedTotal(k); got > budget || got < 1500<<10 {
		t.Fatalf("queued %d bytes, want about 1.5 MiB", got)
	}

	// 700 KiB more for the reader, who is not behind at all, passes the budget.
	f := sized(t, "reader", 700<<10)
	if !reader.recv.Send(f) {
		t.Fatal("reader: its frame was refused instead of the furthest-behind client's queue")
	}
	if got := queuedTotal(k); got > budget {
		t.Fatalf("queued %d bytes, past the %d budget", got, budget)
	}
	if got := reader.read(len(f.Bytes)); !bytes.Equal(got, f.Bytes) {
		t.Fatal("reader: frame mangled")
	}
	// far is cut off now, not after WriteTimeout: its stalled write ends.
	far.body.Reset(far.conn)
	_ = far.rest()
	testkit.Eventually(t, "far to be removed", func() bool { return k.Clients() == 2 })
	if !k.closedFor("slow consumer: all clients together") {
		t.Fatalf("far not closed as a slow consumer: %s", k.logs.String())
	}
	if k.slow(SlowDisconnect) != 1 || k.slow(SlowReset) != 0 {
		t.Fatalf("slow consumers: disconnect %v reset %v, want 1 and 0", k.slow(SlowDisconnect), k.slow(SlowReset))
	}
	if !near.recv.Send(streams.Comment("still here")) {
		t.Fatal("near was cut off too, though cutting far made room")
	}
	testkit.Eventually(t, "far's bytes to be released", func() bool { return queuedTotal(k) < 700<<10 })
}

// A client with SlowReset furthest behind loses its queue for one "reset"
// and keeps its stream.
func TestBudgetResetsTheClientFurthestBehind(t *testing.T) {
	const budget = 1 << 20
	k := newSink(t, SinkOptions{QueueBytes: budget, MaxQueuedBytes: budget})
	far := open(t, k, SlowReset, nil, true)
	stall := far.stall(300 << 10)
	if !far.recv.Send(sized(t, "dropped", 400<<10)) {
		t.Fatal("far: refused under the budget")
	}
	reader := open(t, k, SlowDisconnect, nil, false)
	if !reader.recv.Send(sized(t, "reader", 400<<10)) {
		t.Fatal("reader: its frame was refused instead of the furthest-behind client's queue")
	}
	if got := queuedTotal(k); got > budget {
		t.Fatalf("queued %d bytes, past the %d budget", got, budget)
	}
	if k.slow(SlowReset) != 1 || k.slow(SlowDisconnect) != 0 {
		t.Fatalf("slow consumers: reset %v disconnect %v, want 1 and 0", k.slow(SlowReset), k.slow(SlowDisconnect))
	}
	if !far.recv.Send(event(t, "after", "tick", nil)) {
		t.Fatal("far: refused after its reset")
	}
	far.body.Reset(far.conn)
	if got := far.read(len(stall.Bytes)); !bytes.Equal(got, stall.Bytes) {
		t.Fatal("far: the write in flight did not arrive whole")
	}
	if ev := testkit.Parse([]byte(far.block())); ev.Type != "reset" || !strings.Contains(ev.Data, "slow-consumer") {
		t.Fatalf("far: after the write in flight %+v, want reset", ev)
	}
	if id := testkit.Field([]byte(far.block()), "id"); id != "after" {
		t.Fatalf("far: then id %q, want after", id)
	}
}

// Events flowing to stalled readers and one that reads: the total never
// passes the budget, the stalled ones get their policy, the reader all.
func TestBudgetBoundsStalledReadersWhileEventsFlow(t *testing.T) {
	const (
		budget  = 1 << 20
		stalled = 12
		most    = 20000 // events at most: the stalled are cut off long before
		size    = 1 << 10
	)
	h, spec := newHub(t)
	// Each stalled client alone may queue half the budget: together they would hold 6 MiB.
	k := newSink(t, SinkOptions{QueueBytes: budget / 2, MaxQueuedBytes: budget, WriteTimeout: time.Minute})
	for range stalled {
		p := open(t, k, SlowDisconnect, join(h, spec), true)
		if ev := testkit.Parse([]byte(p.block())); ev.Type != "connected" {
			t.Fatalf("first event %+v, want connected", ev)
		}
	}
	reader := open(t, k, SlowDisconnect, join(h, spec), false)
	if ev := testkit.Parse([]byte(reader.block())); ev.Type != "connected" {
		t.Fatalf("first event %+v, want connected", ev)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	got := 0
	progress := make(chan struct{}, most)
	go func() { // reads up to the "end" event; t.Fatal is not for this goroutine
		defer wg.Done()
		for {
			line, err := reader.body.ReadString('\n')
			if err != nil || line == "event: end\n" {
				return
			}
			if line == "event: tick\n" {
				got++
				progress <- struct{}{}
			}
		}
	}()
	data := []byte(strings.Repeat("x", size))
	peak, sent := 0, 0
	for ; sent < most && k.slow(SlowDisconnect) < stalled; sent++ {
		// The reader is kept within 16 events, so that it is never the
		// furthest behind, however slowly this machine schedules it.
		if sent >= 16 {
			select {
			case <-progress:
			case <-time.After(5 * time.Second):
				t.Fatalf("the reader is stuck after %d events", sent)
			}
		}
		spec.emit(t, streams.Event{ID: strconv.Itoa(sent), Name: "tick", Raw: data})
		peak = max(peak, queuedTotal(k))
		if peak > budget {
			t.Fatalf("after event %d: %d bytes queued, past the %d budget", sent, peak, budget)
		}
	}
	spec.emit(t, streams.Event{Name: "end", Raw: []byte{}})
	wg.Wait()
	if n := k.slow(SlowDisconnect); n != stalled {
		t.Fatalf("after %d events %v slow consumers, want the %d stalled readers", sent, n, stalled)
	}
	if got != sent {
		t.Fatalf("the reader got %d of %d events", got, sent)
	}
	t.Logf("%d events; peak %d bytes queued of %d", sent, peak, budget)
}
