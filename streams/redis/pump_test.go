package redis

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// slowSpec is a real stream whose pipeline does work per event, as one
// with values=true or an expensive operator does: step runs per event.
type slowSpec struct {
	streams.Spec
	step func()
}

func (s slowSpec) Open(ctx context.Context) rxgo.Observable {
	return s.Spec.Open(ctx).Map(func(_ context.Context, i any) (any, error) {
		if i.(streams.Event).Kind == streams.Data {
			s.step()
		}
		return i, nil
	})
}

// overflowRig is a channel stream with a small pump, its pipeline slowed by
// step, relayed by a real hub to a recorder.
type overflowRig struct {
	c       rueidis.Client
	metrics *Metrics
	rec     *testkit.Recorder
	// What the recorder got, after "connected": counted by tally.
	read                  int
	events                int
	overflow, otherResets int
	lastReset             map[string]string
	last                  int // the number of the latest message
}

func newOverflowRig(t *testing.T, buffer int, step func()) *overflowRig {
	_, c := testkit.Redis(t)
	m := NewMetrics(nil, nil)
	src := &Channels{Upstreams: &Upstreams{Client: c}, Metrics: m, Buffer: buffer}
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	t.Cleanup(h.Close)
	rec := testkit.NewRecorder()
	s, err := h.Subscribe(slowSpec{src.Stream(streams.ChannelQuery{Name: "burst"}), step}, rec, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	rec.Wait(t, 1) // connected: the SUBSCRIBE is live
	return &overflowRig{c: c, metrics: m, rec: rec, read: 1}
}

// publish sends messages from..to-1, numbered, in one pipeline.
func (o *overflowRig) publish(t *testing.T, from, to int) {
	cmds := make(rueidis.Commands, 0, to-from)
	for i := from; i < to; i++ {
		cmds = append(cmds, o.c.B().Publish().Channel("burst").Message(strconv.Itoa(i)).Build())
	}
	for _, r := range o.c.DoMulti(context.Background(), cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

func (o *overflowRig) dropped() int { return int(testutil.ToFloat64(o.metrics.Dropped)) }

// tally counts the frames that arrived since it last looked.
func (o *overflowRig) tally(t *testing.T) {
	t.Helper()
	n := o.rec.Count()
	for _, f := range o.rec.Wait(t, n)[o.read:] {
		if testkit.Field(f.Bytes, "event") != "reset" {
			o.events++
			o.last, _ = strconv.Atoi(testkit.Field(f.Bytes, "data"))
			continue
		}
		o.lastReset = nil
		if err := json.Unmarshal([]byte(testkit.Field(f.Bytes, "data")), &o.lastReset); err != nil {
			t.Fatal(err)
		}
		if o.lastReset["reason"] == streams.ResetOverflow {
			o.overflow++
		} else {
			o.otherResets++
		}
	}
	o.read = n
}

// awaitOverflow waits, generously, until n overflow resets have arrived.
func (o *overflowRig) awaitOverflow(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for o.tally(t); o.overflow < n; o.tally(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d overflow resets within 5 s, want %d (%d other resets, the last %v; %d events, %d dropped)",
				o.overflow, n, o.otherResets, o.lastReset, o.events, o.dropped())
		}
		time.Sleep(5 * time.Millisecond) // polling the recorder, as testkit.Eventually does
	}
}

func TestOverflowResetComesWithoutAnotherMessage(t *testing.T) {
	gate := make(chan struct{})
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	o := newOverflowRig(t, 16, func() { <-gate })
	t.Cleanup(release) // runs before the hub's Close, which waits for the stalled operator
	const burst = 500
	o.publish(t, 0, burst)
	ended := time.Now()
	// 16 messages wait in the pump and one or two in rxgo's stalled
	// operator: the rest of the burst is dropped. Then no message follows.
	// Whatever was held is delivered; events and drops account for all.
	testkit.Eventually(t, "the burst to reach the pump", func() bool { return o.dropped() >= burst-18 })
	release()
	o.awaitOverflow(t, 1)
	if took := time.Since(ended); took > time.Second {
		t.Fatalf("overflow reset %v after the burst, want within 1s", took)
	}
	held := burst - o.dropped()
	if o.events != held || o.otherResets != 0 {
		t.Fatalf("%d events and %d other resets before the overflow reset, want %d and 0", o.events, o.otherResets, held)
	}
	// The next message follows the reset, with no second one.
	o.publish(t, burst, burst+1)
	for o.last != burst {
		o.rec.Wait(t, o.read+1)
		o.tally(t)
	}
	if o.overflow != 1 || o.otherResets != 0 || o.events != held+1 {
		t.Fatalf("%d overflow resets, %d other resets and %d events, want 1, 0 and %d", o.overflow, o.otherResets, o.events, held+1)
	}
}

func TestOverflowBurstGivesOneReset(t *testing.T) {
	// A pipeline slower than Redis: each burst overflows its queue many
	// times over, and must still cost each client one reset.
	o := newOverflowRig(t, 64, func() { time.Sleep(50 * time.Microsecond) })
	const burst = 5000
	for round := 1; round <= 2; round++ {
		before := o.dropped()
		o.publish(t, (round-1)*burst, round*burst)
		ended := time.Now()
		testkit.Eventually(t, "every message delivered or dropped", func() bool {
			o.tally(t)
			return o.events+o.dropped() == round*burst
		})
		if o.dropped() == before {
			t.Fatalf("burst %d dropped nothing: the test does not overflow", round)
		}
		o.awaitOverflow(t, round)
		took := time.Since(ended)
		t.Logf("burst %d: %d dropped, the reset came %v after it", round, o.dropped()-before, took)
		if took > time.Second {
			t.Fatalf("burst %d: overflow reset %v after it, want within 1s", round, took)
		}
		if o.overflow != round || o.otherResets != 0 {
			t.Fatalf("after burst %d: %d overflow and %d other resets, want %d and 0 (one per burst)",
				round, o.overflow, o.otherResets, round)
		}
	}
	// The next message comes after the resets, with no other one.
	o.publish(t, 2*burst, 2*burst+1)
	for o.last != 2*burst {
		o.rec.Wait(t, o.read+1)
		o.tally(t)
	}
	if o.overflow != 2 || o.otherResets != 0 {
		t.Fatalf("%d overflow and %d other resets, want 2 and 0", o.overflow, o.otherResets)
	}
}
