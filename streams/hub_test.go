package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactivex/rxgo/v2"
)

// memSpec is an in-process source: what the test sends on items goes down
// the pipeline, after an initial Ready.
type memSpec struct {
	key            string
	items          chan Event
	opened, closed atomic.Int32
}

func newMemSpec(key string) *memSpec { return &memSpec{key: key, items: make(chan Event)} }

func (s *memSpec) Key() string              { return s.key }
func (s *memSpec) Source() string           { return "mem" }
func (s *memSpec) Describe() map[string]any { return map[string]any{"stream": s.key} }

func (s *memSpec) Open(ctx context.Context) rxgo.Observable {
	s.opened.Add(1)
	out := make(chan rxgo.Item)
	go func() {
		defer s.closed.Add(1)
		defer close(out)
		send := func(ev Event) bool {
			select {
			case out <- rxgo.Of(ev):
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send(Event{Kind: Ready}) {
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
	case s.items <- Event{Name: name, Data: map[string]string{"n": name}}:
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline not draining")
	}
}

// recorder is a Receiver that keeps what it is sent.
type recorder struct {
	mu     sync.Mutex
	frames []*Frame
	got    chan struct{}
	refuse atomic.Bool
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 1<<16)} }

func (r *recorder) Send(f *Frame) bool {
	if r.refuse.Load() {
		return false
	}
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	r.got <- struct{}{}
	return true
}

// wait returns the first n frames once they have arrived.
func (r *recorder) wait(t *testing.T, n int) []*Frame {
	t.Helper()
	for {
		r.mu.Lock()
		if len(r.frames) >= n {
			fs := append([]*Frame(nil), r.frames[:n]...)
			r.mu.Unlock()
			return fs
		}
		r.mu.Unlock()
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("waited for %d frames, have %d", n, r.count())
		}
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

// field returns the value of an SSE field of a frame.
func field(f *Frame, name string) string {
	for _, line := range strings.Split(string(f.Bytes), "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	return ""
}

func eventNames(fs []*Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, field(f, "event"))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition with no event to await
	}
}

func TestHubSharesOneTopicAndFrame(t *testing.T) {
	h := NewHub(HubOptions{Linger: time.Hour})
	defer h.Close()
	spec := newMemSpec("a")
	r1, r2 := newRecorder(), newRecorder()
	s1, _ := h.Subscribe(spec, r1, "")
	s2, _ := h.Subscribe(spec, r2, "")
	defer s1.Close()
	defer s2.Close()
	r1.wait(t, 1)
	r2.wait(t, 1)
	spec.emit(t, "set")
	f1, f2 := r1.wait(t, 2), r2.wait(t, 2)
	if got := eventNames(f1); got[0] != "connected" || got[1] != "set" {
		t.Fatalf("events %v", got)
	}
	if f1[1] != f2[1] {
		t.Fatal("subscribers got different frames for one event: it was encoded twice")
	}
	if spec.opened.Load() != 1 || h.Topics() != 1 || h.Subscribers("a") != 2 {
		t.Fatalf("opened %d topics %d subscribers %d", spec.opened.Load(), h.Topics(), h.Subscribers("a"))
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(field(f1[0], "data")), &data); err != nil || data["stream"] != "a" {
		t.Fatalf("connected data %q: %v", field(f1[0], "data"), err)
	}
}

func TestHubLingerThenRelease(t *testing.T) {
	h := NewHub(HubOptions{Linger: 50 * time.Millisecond})
	defer h.Close()
	spec := newMemSpec("a")
	r := newRecorder()
	s, _ := h.Subscribe(spec, r, "")
	r.wait(t, 1)
	s.Close()
	s.Close() // idempotent
	if h.Topics() != 1 {
		t.Fatal("topic released before its linger")
	}
	// Rejoining during the linger keeps the same upstream.
	s, _ = h.Subscribe(spec, newRecorder(), "")
	s.Close()
	waitFor(t, "topic release", func() bool { return h.Topics() == 0 && spec.closed.Load() == 1 })
	if spec.opened.Load() != 1 {
		t.Fatalf("upstream opened %d times, want 1", spec.opened.Load())
	}
}

func TestHubResume(t *testing.T) {
	h := NewHub(HubOptions{Linger: time.Hour, ReplaySize: 8})
	defer h.Close()
	spec := newMemSpec("a")
	r := newRecorder()
	s, _ := h.Subscribe(spec, r, "")
	spec.emit(t, "e1")
	spec.emit(t, "e2")
	got := r.wait(t, 3)
	s.Close()
	spec.emit(t, "e3")
	spec.emit(t, "e4")
	// The topic goroutine has published e4 once a live subscriber sees e5.
	probe := newRecorder()
	ps, _ := h.Subscribe(spec, probe, "")
	defer ps.Close()
	spec.emit(t, "e5")
	probe.wait(t, 2)

	r2 := newRecorder()
	s2, _ := h.Subscribe(spec, r2, got[2].ID) // resumes after e2
	defer s2.Close()
	resumed := r2.wait(t, 4)
	if names := eventNames(resumed); fmt.Sprint(names) != "[connected e3 e4 e5]" {
		t.Fatalf("resume delivered %v", names)
	}
	if resumed[0].ID != "" {
		t.Fatalf("connected of a resuming client carries id %q; it would skip the replay on reconnect", resumed[0].ID)
	}

	// Resuming from "connected" (no event seen yet) loses nothing either.
	r3 := newRecorder()
	s3, _ := h.Subscribe(spec, r3, got[0].ID)
	defer s3.Close()
	if names := eventNames(r3.wait(t, 6)); fmt.Sprint(names) != "[connected e1 e2 e3 e4 e5]" {
		t.Fatalf("resume from connected delivered %v", names)
	}
}

func TestHubResetOnUnknownAndExpiredIDs(t *testing.T) {
	h := NewHub(HubOptions{Linger: time.Hour, ReplaySize: 2})
	defer h.Close()
	spec := newMemSpec("a")
	r := newRecorder()
	s, _ := h.Subscribe(spec, r, "")
	defer s.Close()
	for i := range 4 {
		spec.emit(t, fmt.Sprint("e", i))
	}
	fs := r.wait(t, 5)
	for _, c := range []struct{ id, reason string }{
		{"nope-1", ResetUnknownID},
		{fs[1].ID, ResetExpiredID}, // e0 fell out of a ring of 2
	} {
		rr := newRecorder()
		ss, _ := h.Subscribe(spec, rr, c.id)
		got := rr.wait(t, 2)
		ss.Close()
		if names := eventNames(got); fmt.Sprint(names) != "[connected reset]" {
			t.Fatalf("id %q: %v", c.id, names)
		}
		if got[0].ID != fs[4].ID {
			t.Fatalf("connected after reset has id %q, want the head %q", got[0].ID, fs[4].ID)
		}
		if !strings.Contains(field(got[1], "data"), c.reason) {
			t.Fatalf("reset data %q, want reason %s", field(got[1], "data"), c.reason)
		}
	}
}

func TestHubGapIsReplayedAsReset(t *testing.T) {
	h := NewHub(HubOptions{Linger: time.Hour})
	defer h.Close()
	spec := newMemSpec("a")
	r := newRecorder()
	s, _ := h.Subscribe(spec, r, "")
	defer s.Close()
	spec.emit(t, "e1")
	first := r.wait(t, 2)
	spec.items <- Event{Kind: Gap, Reason: "test"}
	spec.emit(t, "e2")
	if names := eventNames(r.wait(t, 4)); fmt.Sprint(names) != "[connected e1 reset e2]" {
		t.Fatalf("live: %v", names)
	}
	r2 := newRecorder()
	s2, _ := h.Subscribe(spec, r2, first[1].ID)
	defer s2.Close()
	if names := eventNames(r2.wait(t, 3)); fmt.Sprint(names) != "[connected reset e2]" {
		t.Fatalf("replay across a gap: %v", names)
	}
}

func TestHubDropsRefusingReceiver(t *testing.T) {
	h := NewHub(HubOptions{Linger: 0})
	defer h.Close()
	spec := newMemSpec("a")
	ok, bad := newRecorder(), newRecorder()
	s1, _ := h.Subscribe(spec, ok, "")
	defer s1.Close()
	h.Subscribe(spec, bad, "")
	bad.wait(t, 1)
	bad.refuse.Store(true)
	spec.emit(t, "e1")
	ok.wait(t, 2)
	if n := h.Subscribers("a"); n != 1 {
		t.Fatalf("%d subscribers after one refused, want 1", n)
	}
}

func TestHubClosed(t *testing.T) {
	h := NewHub(HubOptions{})
	spec := newMemSpec("a")
	h.Subscribe(spec, newRecorder(), "")
	h.Close()
	if spec.closed.Load() != 1 {
		t.Fatal("Close returned before the upstream was released")
	}
	if _, err := h.Subscribe(spec, newRecorder(), ""); err != ErrClosed {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// queueReceiver does what the sink's client does on Send: lock, append to
// a bounded queue, and (here) discard instead of writing.
type queueReceiver struct {
	mu    sync.Mutex
	queue []*Frame
}

func (q *queueReceiver) Send(f *Frame) bool {
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
	h := NewHub(HubOptions{Linger: time.Hour})
	defer h.Close()
	spec := newMemSpec("bench")
	for range subscribers {
		if _, err := h.Subscribe(spec, &queueReceiver{}, ""); err != nil {
			b.Fatal(err)
		}
	}
	waitReady := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		t := h.topics["bench"]
		h.mu.Unlock()
		t.mu.Lock()
		ready := t.ready
		t.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(waitReady) {
			b.Fatal("topic never ready")
		}
		time.Sleep(time.Millisecond)
	}
	h.mu.Lock()
	t := h.topics["bench"]
	h.mu.Unlock()
	ev := Event{Name: "set", Data: KeyspaceEvent{Key: "user:1", Event: "set", TS: 1}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t.publish(ev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/subscribers, "ns/delivery")
}

func TestHubCombinedStreamIsInIDOrderAndResumes(t *testing.T) {
	h := NewHub(HubOptions{Linger: time.Hour, ReplaySize: 4096})
	defer h.Close()
	a, b := newMemSpec("a"), newMemSpec("b")
	r := newRecorder()
	subs, err := h.SubscribeAll([]Join{{Spec: a}, {Spec: b}}, r, "")
	if err != nil {
		t.Fatal(err)
	}
	r.wait(t, 2) // two connected
	const n = 500
	var wg sync.WaitGroup
	for _, s := range []*memSpec{a, b} {
		wg.Add(1)
		go func() { // both topics publish at once
			defer wg.Done()
			for i := range n {
				s.items <- Event{Name: fmt.Sprint(s.key, i), Data: i}
			}
		}()
	}
	wg.Wait()
	got := r.wait(t, 2+2*n)
	var last uint64
	for _, f := range got[2:] {
		seq, ok := h.ids.parse(f.ID)
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
	r2 := newRecorder()
	if _, err := h.SubscribeAll([]Join{{Spec: a}, {Spec: b}}, r2, mid.ID); err != nil {
		t.Fatal(err)
	}
	rest := r2.wait(t, 2+n-1)
	for i, f := range rest[2:] {
		if f != got[2+n+1+i] {
			t.Fatalf("resumed frame %d is %s, want %s", i, f.ID, got[2+n+1+i].ID)
		}
	}
	if r2.count() != 2+n-1 {
		t.Fatalf("resume sent %d frames, want %d", r2.count(), 2+n-1)
	}
	if _, err := h.SubscribeAll([]Join{{Spec: a}, {Spec: a}}, newRecorder(), ""); err == nil {
		t.Fatal("one topic twice in a combined stream was accepted")
	}
}
