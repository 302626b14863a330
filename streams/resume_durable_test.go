package streams_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/reactivex/rxgo/v2"
)

// memLog is an in-process Durable source shaped like a Redis Stream: an
// entry is in the history before the topic's tail reads it, ids are
// 1, 2, 3, ..., and history is read in small pages.
type memLog struct {
	mu      sync.Mutex
	entries []int
	live    chan int // what the tail has not read yet
	opened  chan struct{}
}

func newMemLog() *memLog {
	return &memLog{live: make(chan int, 1<<16), opened: make(chan struct{}, 1)}
}

// append adds n entries to the history and hands them to the tail.
func (l *memLog) append(n int) {
	for range n {
		l.mu.Lock()
		id := len(l.entries) + 1
		l.entries = append(l.entries, id)
		l.mu.Unlock()
		l.live <- id
	}
}

func (l *memLog) Key() string              { return "memlog" }
func (l *memLog) Source() string           { return "memlog" }
func (l *memLog) Describe() map[string]any { return map[string]any{"stream": "memlog"} }

func (l *memLog) Open(ctx context.Context) rxgo.Observable {
	out := make(chan rxgo.Item)
	go func() {
		defer close(out)
		l.mu.Lock()
		head := len(l.entries)
		l.mu.Unlock()
		// Entries already in the history are not the tail's business.
		for i := 0; i < head; i++ {
			<-l.live
		}
		send := func(ev streams.Event) bool {
			select {
			case out <- rxgo.Of(ev):
				return true
			case <-ctx.Done():
				return false
			}
		}
		if !send(streams.Event{Kind: streams.Ready, ID: strconv.Itoa(head)}) {
			return
		}
		l.opened <- struct{}{}
		for {
			select {
			case id := <-l.live:
				if !send(entry(id)) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return rxgo.FromChannel(out)
}

func entry(id int) streams.Event {
	return streams.Event{ID: strconv.Itoa(id), Name: "entry", Data: map[string]int{"n": id}}
}

func (l *memLog) Replay(ctx context.Context, lastID, head string, emit func(streams.Event) bool) (string, error) {
	h, _ := strconv.Atoi(head)
	after := h
	ready := streams.Event{Kind: streams.Ready, ID: head}
	if lastID != "" {
		n, err := strconv.Atoi(lastID)
		l.mu.Lock()
		newest := len(l.entries)
		l.mu.Unlock()
		if err != nil || n > newest {
			if !emit(ready) || !emit(streams.Event{Kind: streams.Gap, Code: streams.ResetUnknownID}) {
				return "", nil
			}
			return head, nil
		}
		after, ready = n, streams.Event{Kind: streams.Ready}
	}
	if !emit(ready) {
		return "", nil
	}
	for after < h {
		l.mu.Lock()
		page := l.entries[after:min(after+7, h)]
		l.mu.Unlock()
		for _, id := range page {
			if !emit(entry(id)) {
				return strconv.Itoa(after), nil
			}
			after = id
		}
	}
	return strconv.Itoa(after), ctx.Err()
}

func (l *memLog) CompareIDs(a, b string) int {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return cmp.Compare(x, y)
}

// ids returns the ids of the entry frames, checking that "connected" came first.
func entryIDs(t *testing.T, fs []*streams.Frame) []int {
	t.Helper()
	if len(fs) == 0 || testkit.Field(fs[0].Bytes, "event") != "connected" {
		t.Fatalf("first frame is not connected: %v", testkit.EventNames(fs))
	}
	var out []int
	for _, f := range fs[1:] {
		if testkit.Field(f.Bytes, "event") != "entry" {
			t.Fatalf("unexpected %q among entries", testkit.Field(f.Bytes, "event"))
		}
		n, _ := strconv.Atoi(f.ID)
		out = append(out, n)
	}
	return out
}

func wantRange(t *testing.T, who string, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from+1 {
		t.Fatalf("%s: got %d entries, want %d..%d", who, len(got), from, to)
	}
	for i, id := range got {
		if id != from+i {
			t.Fatalf("%s: entry %d is %d, want %d (gap or duplicate at the seam)", who, i, id, from+i)
		}
	}
}

// Subscribers join at random moments with random resume points while
// entries pour in; every one must get exactly the entries after its point,
// in order. A replay buffer of 4 forces the overrun path too.
func TestDurableSeamUnderConcurrentWrites(t *testing.T) {
	const total = 3000
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, ReplaySize: 4})
	defer h.Close()
	log := newMemLog()
	log.append(50)
	first := testkit.NewRecorder()
	fs, _ := h.Subscribe(log, first, "")
	defer fs.Close()
	<-log.opened

	done := make(chan struct{})
	go func() { defer close(done); log.append(total - 50) }()
	type joiner struct {
		r    *testkit.Recorder
		from int
	}
	var joiners []joiner
	for i := range 40 {
		log.mu.Lock()
		n := len(log.entries)
		log.mu.Unlock()
		from := rand.IntN(n + 1)
		r := testkit.NewRecorder()
		lastID := strconv.Itoa(from)
		if i%4 == 0 {
			lastID, from = "", -1 // joins at the topic's head, whatever that is
		}
		s, err := h.Subscribe(log, r, lastID)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		joiners = append(joiners, joiner{r, from})
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // spread the joins over the writes
	}
	<-done
	wantRange(t, "live subscriber", entryIDs(t, first.Wait(t, total-50+1)), 51, total)
	for i, j := range joiners {
		from := j.from
		if from < 0 { // started at the head: connected says where
			c := j.r.Wait(t, 1)
			from, _ = strconv.Atoi(c[0].ID)
		}
		got := entryIDs(t, j.r.Wait(t, total-from+1))
		wantRange(t, fmt.Sprintf("joiner %d from %d", i, from), got, from+1, total)
	}
}

// A client coming from a process further ahead than this topic must not
// see again what it has.
func TestDurableClientAheadOfTopic(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := newMemLog()
	log.append(2)
	warm := testkit.NewRecorder()
	ws, _ := h.Subscribe(log, warm, "")
	defer ws.Close()
	<-log.opened
	// Entries 3..7 are in the history but this topic's tail has not read
	// them yet: hold them back from it.
	log.mu.Lock()
	log.entries = append(log.entries, 3, 4, 5, 6, 7)
	log.mu.Unlock()
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(log, r, "5")
	defer s.Close()
	r.Wait(t, 1) // connected
	for id := 3; id <= 7; id++ {
		log.live <- id
	}
	warm.Wait(t, 6)
	wantRange(t, "resumed at 5", entryIDs(t, r.Wait(t, 3)), 6, 7)
	if c := r.Wait(t, 1)[0]; c.ID != "" {
		t.Fatalf("connected of a resuming client has id %q", c.ID)
	}
}

func TestDurableUnknownIDResets(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := newMemLog()
	log.append(3)
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(log, r, "99")
	defer s.Close()
	got := r.Wait(t, 2)
	if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected reset]" || got[0].ID != "3" {
		t.Fatalf("got %v, connected id %q", names, got[0].ID)
	}
	log.append(1)
	if f := r.Wait(t, 3)[2]; f.ID != "4" || testkit.Field(f.Bytes, "event") != "entry" {
		t.Fatalf("after reset got %q", f.Bytes)
	}
}

// A subscriber that leaves mid-replay stops its replay; the hub's Close
// waits for it (goleak checks nothing is left).
func TestDurableLeaveDuringReplay(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	log := newMemLog()
	log.append(5000)
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(log, r, "0")
	r.Wait(t, 10)
	s.Close()
	h.Close()
	if n := r.Count(); n > 5001 {
		t.Fatalf("%d frames", n)
	}
}

// pacedRecorder grants room one event at a time and notes any event sent
// without room.
type pacedRecorder struct {
	*testkit.Recorder
	tokens     chan struct{}
	credit     atomic.Int32
	violations atomic.Int32
}

func (p *pacedRecorder) WaitRoom(ctx context.Context) bool {
	select {
	case <-p.tokens:
		p.credit.Add(1)
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *pacedRecorder) Send(f *streams.Frame) bool {
	if p.credit.Add(-1) < 0 {
		p.violations.Add(1)
	}
	return p.Recorder.Send(f)
}

// A replay goes at the receiver's pace: every replayed event waits for room.
func TestDurableReplayIsPaced(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := newMemLog()
	log.append(100)
	p := &pacedRecorder{Recorder: testkit.NewRecorder(), tokens: make(chan struct{})}
	s, _ := h.Subscribe(log, p, "0")
	defer s.Close()
	for range 101 { // connected and 100 entries
		select {
		case p.tokens <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("the replay stopped asking for room (%d events sent without)", p.violations.Load())
		}
	}
	wantRange(t, "paced replay", entryIDs(t, p.Wait(t, 101)), 1, 100)
	if n := p.violations.Load(); n != 0 {
		t.Fatalf("%d events sent without room", n)
	}
}

// flakyLog fails its first replay halfway, as a Redis connection might.
type flakyLog struct {
	*memLog
	failed atomic.Bool
}

func (f *flakyLog) Replay(ctx context.Context, lastID, head string, emit func(streams.Event) bool) (string, error) {
	if f.failed.Swap(true) {
		return f.memLog.Replay(ctx, lastID, head, emit)
	}
	n := 0
	pos, _ := f.memLog.Replay(ctx, lastID, head, func(ev streams.Event) bool {
		if n++; n > 5 {
			return false
		}
		return emit(ev)
	})
	return pos, fmt.Errorf("connection lost")
}

// A failed replay is retried from where it got to: one "connected", no
// entry lost or repeated.
func TestDurableReplayRetried(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := &flakyLog{memLog: newMemLog()}
	log.append(20)
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(log, r, "0")
	defer s.Close()
	wantRange(t, "retried replay", entryIDs(t, r.Wait(t, 21)), 1, 20)
	log.append(1)
	if f := r.Wait(t, 22)[21]; f.ID != "21" {
		t.Fatalf("live after a retried replay: %q", f.Bytes)
	}
}
