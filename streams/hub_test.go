package streams_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/reactivex/rxgo/v2"
)

// memSpec is an in-process source: what the test sends on items goes down
// the pipeline, after an initial Ready.
type memSpec struct {
	key            string
	items          chan streams.Event
	opened, closed atomic.Int32
}

func newMemSpec(key string) *memSpec { return &memSpec{key: key, items: make(chan streams.Event)} }

func (s *memSpec) Key() string              { return s.key }
func (s *memSpec) Source() string           { return "mem" }
func (s *memSpec) Describe() map[string]any { return map[string]any{"stream": s.key} }

func (s *memSpec) Open(ctx context.Context) rxgo.Observable {
	s.opened.Add(1)
	out := make(chan rxgo.Item)
	go func() {
		defer s.closed.Add(1)
		defer close(out)
		send := func(ev streams.Event) bool {
			select {
			case out <- rxgo.Of(ev):
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send(streams.Event{Kind: streams.Ready}) {
			return
		}
		for {
			select {
			case ev := <-s.items:
				if !send(ev) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return rxgo.FromChannel(out)
}

func (s *memSpec) emit(t *testing.T, name string) {
	t.Helper()
	select {
	case s.items <- streams.Event{Name: name, Data: map[string]string{"n": name}}:
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline not draining")
	}
}

func TestHubSharesOneTopicAndFrame(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	spec := newMemSpec("a")
	r1, r2 := testkit.NewRecorder(), testkit.NewRecorder()
	s1, _ := h.Subscribe(spec, r1, "")
	s2, _ := h.Subscribe(spec, r2, "")
	defer s1.Close()
	defer s2.Close()
	r1.Wait(t, 1)
	r2.Wait(t, 1)
	spec.emit(t, "set")
	f1, f2 := r1.Wait(t, 2), r2.Wait(t, 2)
	if got := testkit.EventNames(f1); got[0] != "connected" || got[1] != "set" {
		t.Fatalf("events %v", got)
	}
	if f1[1] != f2[1] {
		t.Fatal("subscribers got different frames for one event: it was encoded twice")
	}
	if spec.opened.Load() != 1 || h.Topics() != 1 || h.Subscribers("a") != 2 {
		t.Fatalf("opened %d topics %d subscribers %d", spec.opened.Load(), h.Topics(), h.Subscribers("a"))
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(testkit.Field(f1[0].Bytes, "data")), &data); err != nil || data["stream"] != "a" {
		t.Fatalf("connected data %q: %v", testkit.Field(f1[0].Bytes, "data"), err)
	}
}

func TestHubLingerThenRelease(t *testing.T) {
	const linger = 500 * time.Millisecond
	h := streams.NewHub(streams.HubOptions{Linger: linger})
	defer h.Close()
	spec := newMemSpec("a")
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(spec, r, "")
	r.Wait(t, 1)
	left := time.Now()
	s.Close()
	s.Close() // idempotent
	// Only what happens within the linger proves anything: a loaded
	// machine may take longer than that between two lines.
	if h.Topics() != 1 && time.Since(left) < linger {
		t.Fatal("topic released before its linger")
	}
	// Rejoining during the linger keeps the same upstream.
	s, _ = h.Subscribe(spec, testkit.NewRecorder(), "")
	rejoinedInTime := time.Since(left) < linger
	s.Close()
	testkit.Eventually(t, "topic release", func() bool { return h.Topics() == 0 && spec.closed.Load() == spec.opened.Load() })
	if rejoinedInTime && spec.opened.Load() != 1 {
		t.Fatalf("upstream opened %d times, want 1", spec.opened.Load())
	}
}

func TestHubResume(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, ReplaySize: 8})
	defer h.Close()
	spec := newMemSpec("a")
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(spec, r, "")
	spec.emit(t, "e1")
	spec.emit(t, "e2")
	got := r.Wait(t, 3)
	s.Close()
	spec.emit(t, "e3")
	spec.emit(t, "e4")
	// The topic goroutine has published e4 once a live subscriber sees e5.
	probe := testkit.NewRecorder()
	ps, _ := h.Subscribe(spec, probe, "")
	defer ps.Close()
	spec.emit(t, "e5")
	probe.Wait(t, 2)

	r2 := testkit.NewRecorder()
	s2, _ := h.Subscribe(spec, r2, got[2].ID) // resumes after e2
	defer s2.Close()
	resumed := r2.Wait(t, 4)
	if names := testkit.EventNames(resumed); fmt.Sprint(names) != "[connected e3 e4 e5]" {
		t.Fatalf("resume delivered %v", names)
	}
	if resumed[0].ID != "" {
		t.Fatalf("connected of a resuming client carries id %q; it would skip the replay on reconnect", resumed[0].ID)
	}

	// Resuming from "connected" (no event seen yet) loses nothing either.
	r3 := testkit.NewRecorder()
	s3, _ := h.Subscribe(spec, r3, got[0].ID)
	defer s3.Close()
	if names := testkit.EventNames(r3.Wait(t, 6)); fmt.Sprint(names) != "[connected e1 e2 e3 e4 e5]" {
		t.Fatalf("resume from connected delivered %v", names)
	}
}

func TestHubResetOnUnknownAndExpiredIDs(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, ReplaySize: 2})
	defer h.Close()
	spec := newMemSpec("a")
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(spec, r, "")
	defer s.Close()
	for i := range 4 {
		spec.emit(t, fmt.Sprint("e", i))
	}
	fs := r.Wait(t, 5)
	for _, c := range []struct{ id, reason string }{
		{"nope-1", streams.ResetUnknownID},
		{fs[1].ID, streams.ResetExpiredID}, // e0 fell out of a ring of 2
	} {
		rr := testkit.NewRecorder()
		ss, _ := h.Subscribe(spec, rr, c.id)
		got := rr.Wait(t, 2)
		ss.Close()
		if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected reset]" {
			t.Fatalf("id %q: %v", c.id, names)
		}
		if got[0].ID != fs[4].ID {
			t.Fatalf("connected after reset has id %q, want the head %q", got[0].ID, fs[4].ID)
		}
		if !strings.Contains(testkit.Field(got[1].Bytes, "data"), c.reason) {
			t.Fatalf("reset data %q, want reason %s", testkit.Field(got[1].Bytes, "data"), c.reason)
		}
	}
}

func TestHubGapIsReplayedAsReset(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	spec := newMemSpec("a")
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(spec, r, "")
	defer s.Close()
	spec.emit(t, "e1")
	first := r.Wait(t, 2)
	spec.items <- streams.Event{Kind: streams.Gap, Reason: "test"}
	spec.emit(t, "e2")
	if names := testkit.EventNames(r.Wait(t, 4)); fmt.Sprint(names) != "[connected e1 reset e2]" {
		t.Fatalf("live: %v", names)
	}
	r2 := testkit.NewRecorder()
	s2, _ := h.Subscribe(spec, r2, first[1].ID)
	defer s2.Close()
	if names := testkit.EventNames(r2.Wait(t, 3)); fmt.Sprint(names) != "[connected reset e2]" {
		t.Fatalf("replay across a gap: %v", names)
	}
}

func TestHubDropsRefusingReceiver(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	spec := newMemSpec("a")
	ok, bad := testkit.NewRecorder(), testkit.NewRecorder()
	s1, _ := h.Subscribe(spec, ok, "")
	defer s1.Close()
	h.Subscribe(spec, bad, "")
	bad.Wait(t, 1)
	bad.Refuse.Store(true)
	spec.emit(t, "e1")
	ok.Wait(t, 2)
	if n := h.Subscribers("a"); n != 1 {
		t.Fatalf("%d subscribers after one refused, want 1", n)
	}
}

func TestHubClosed(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{})
	spec := newMemSpec("a")
	h.Subscribe(spec, testkit.NewRecorder(), "")
	h.Close()
	if spec.closed.Load() != 1 {
		t.Fatal("Close returned before the upstream was released")
	}
	if _, err := h.Subscribe(spec, testkit.NewRecorder(), ""); err != streams.ErrClosed {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// queueReceiver does what the sink's client does on Send: lock, append to
// a bounded queue, and (here) discard instead of writing.
type queueReceiver struct {
	mu    sync.Mutex
	queue []*streams.Frame
}

func (q *queueReceiver) Send(f *streams.Frame) bool {
	q.mu.Lock()
	if len(q.queue) == 64 {
		q.queue = q.queue[:0]
	}
	q.queue = append(q.queue, f)
	q.mu.Unlock()
	return true
}

// BenchmarkHubFanout delivers one event to 10,000 subscribers per iteration:
// one encode, one ring push, 10,000 queue appends.
func BenchmarkHubFanout(b *testing.B) {
	const subscribers = 10000
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	spec := newMemSpec("bench")
	for range subscribers {
		if _, err := h.Subscribe(spec, &queueReceiver{}, ""); err != nil {
			b.Fatal(err)
		}
	}
	var publish func(streams.Event)
	testkit.Eventually(b, "topic ready", func() bool {
		publish = h.Publisher("bench")
		return publish != nil
	})
	ev := streams.Event{Name: "set", Data: streams.KeyspaceEvent{Key: "user:1", Event: "set", TS: 1}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		publish(ev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/subscribers, "ns/delivery")
}

func TestHubCombinedStreamIsInIDOrderAndResumes(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, ReplaySize: 4096})
	defer h.Close()
	a, b := newMemSpec("a"), newMemSpec("b")
	r := testkit.NewRecorder()
	subs, err := h.SubscribeAll([]streams.Join{{Spec: a}, {Spec: b}}, r, "")
	if err != nil {
		t.Fatal(err)
	}
	r.Wait(t, 2) // two connected
	const n = 500
	var wg sync.WaitGroup
	for _, s := range []*memSpec{a, b} {
		wg.Add(1)
		go func() { // both topics publish at once
			defer wg.Done()
			for i := range n {
				s.items <- streams.Event{Name: fmt.Sprint(s.key, i), Data: i}
			}
		}()
	}
	wg.Wait()
	got := r.Wait(t, 2+2*n)
	var last uint64
	for _, f := range got[2:] {
		seq, ok := h.ParseID(f.ID)
		if !ok || seq <= last {
			t.Fatalf("frame %s after id %d: out of order", f.ID, last)
		}
		last = seq
	}
	for _, s := range subs {
		s.Close()
	}
	// Resume from the middle: exactly the rest, in order, no duplicates.
	mid := got[2+n]
	r2 := testkit.NewRecorder()
	if _, err := h.SubscribeAll([]streams.Join{{Spec: a}, {Spec: b}}, r2, mid.ID); err != nil {
		t.Fatal(err)
	}
	rest := r2.Wait(t, 2+n-1)
	for i, f := range rest[2:] {
		if f != got[2+n+1+i] {
			t.Fatalf("resumed frame %d is %s, want %s", i, f.ID, got[2+n+1+i].ID)
		}
	}
	if r2.Count() != 2+n-1 {
		t.Fatalf("resume sent %d frames, want %d", r2.Count(), 2+n-1)
	}
	if _, err := h.SubscribeAll([]streams.Join{{Spec: a}, {Spec: a}}, testkit.NewRecorder(), ""); err == nil {
		t.Fatal("one topic twice in a combined stream was accepted")
	}
}
