package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/reactivex/rxgo/v2"
)

// jbase puts the fake journals' ids where Redis's are today.
const jbase = 1733237000000

// jid is the id of a fake journal's entry n (1, 2, ...; 0 is "before any").
func jid(n int) string { return streams.EntryID{MS: jbase + uint64(n)}.String() }

func jn(id string) (int, bool) {
	e, ok := streams.ParseEntryID(id)
	if !ok || e.MS < jbase || e.Seq != 0 {
		return 0, false
	}
	return int(e.MS - jbase), true
}

// jlog is an in-process journal: a Durable source with Redis entry ids,
// several of which can be combined, that any number of hubs (processes)
// read at once, with reset entries and trimming.
type jlog struct {
	key  string
	gate chan struct{} // when set, each replayed entry waits for a token (closed: none)

	mu      sync.Mutex
	entries []streams.Event
	first   int           // the oldest entry still held
	notify  chan struct{} // closed on every append
}

func newJlog(key string) *jlog {
	return &jlog{key: key, first: 1, notify: make(chan struct{})}
}

func (l *jlog) add(mk func(n int) streams.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.entries) + 1
	ev := mk(n)
	ev.ID = jid(n)
	l.entries = append(l.entries, ev)
	close(l.notify)
	l.notify = make(chan struct{})
}

// append adds k data entries.
func (l *jlog) append(k int) {
	for range k {
		l.add(func(n int) streams.Event {
			return streams.Event{Name: "entry", Data: map[string]any{"log": l.key, "n": n, "even": n%2 == 0}}
		})
	}
}

// appendReset adds a reset entry, as a journal writer's failover does.
func (l *jlog) appendReset() string {
	l.add(func(int) streams.Event {
		return streams.Event{Kind: streams.Gap, Code: streams.ResetGap, Reason: "writer changed"}
	})
	return jid(l.len())
}

func (l *jlog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// trim drops the entries up to n from the history.
func (l *jlog) trim(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.first = n + 1
}

func (l *jlog) Key() string              { return "jlog " + l.key }
func (l *jlog) Source() string           { return "jlog" }
func (l *jlog) Describe() map[string]any { return map[string]any{"stream": "jlog", "key": l.key} }

func (l *jlog) CompareIDs(a, b string) int {
	x, _ := streams.ParseEntryID(a)
	y, _ := streams.ParseEntryID(b)
	return x.Compare(y)
}

// Open tails the journal from its newest entry, like XREAD.
func (l *jlog) Open(ctx context.Context) rxgo.Observable {
	out := make(chan rxgo.Item)
	go func() {
		defer close(out)
		send := func(ev streams.Event) bool {
			select {
			case out <- rxgo.Of(ev):
				return true
			case <-ctx.Done():
				return false
			}
		}
		next := l.len()
		if !send(streams.Event{Kind: streams.Ready, ID: jid(next)}) {
			return
		}
		for {
			l.mu.Lock()
			if next < len(l.entries) {
				ev := l.entries[next]
				next++
				l.mu.Unlock()
				if !send(ev) {
					return
				}
				continue
			}
			notify := l.notify
			l.mu.Unlock()
			select {
			case <-notify:
			case <-ctx.Done():
				return
			}
		}
	}()
	return rxgo.FromChannel(out)
}

func (l *jlog) Replay(ctx context.Context, lastID, head string, emit func(streams.Event) bool) (string, error) {
	h, _ := jn(head)
	l.mu.Lock()
	newest, first := len(l.entries), l.first
	l.mu.Unlock()
	after := h
	switch n, ok := jn(lastID); {
	case lastID == "":
		if !emit(streams.Event{Kind: streams.Ready, ID: head}) {
			return "", nil
		}
	case !ok || n > newest:
		if !emit(streams.Event{Kind: streams.Ready, ID: head}) || !emit(streams.Event{Kind: streams.Gap, Code: streams.ResetUnknownID}) {
			return "", nil
		}
		return head, nil
	case n < first-1:
		if !emit(streams.Event{Kind: streams.Ready}) || !emit(streams.Event{Kind: streams.Gap, Code: streams.ResetExpiredID, ID: jid(first)}) {
			return "", nil
		}
		after = first - 1
	default:
		if !emit(streams.Event{Kind: streams.Ready}) {
			return "", nil
		}
		after = n
	}
	for after < h {
		if l.gate != nil {
			select {
			case <-l.gate:
			case <-ctx.Done():
				return jid(after), ctx.Err()
			}
		}
		l.mu.Lock()
		ev := l.entries[after]
		l.mu.Unlock()
		if !emit(ev) {
			return jid(after), nil
		}
		after++
	}
	return jid(after), nil
}

// frameData decodes a frame's JSON data.
func frameData(t *testing.T, f *streams.Frame) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(testkit.Field(f.Bytes, "data")), &d); err != nil {
		t.Fatalf("data of %q: %v", f.Bytes, err)
	}
	return d
}

// Operators on a journal
// ----------------------

func TestOpsOnDurableStatelessKeepIDs(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := newJlog("a")
	log.append(10)
	ops, err := streams.Ops{Filter: `even`, Map: `{"m": n * 10}`}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := streams.WithOps(log, ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := spec.(streams.Durable)
	if !ok {
		t.Fatal("filter and map made the journal's spec not Durable")
	}
	var replayed []string
	pos, err := d.Replay(context.Background(), jid(3), jid(9), func(ev streams.Event) bool {
		if ev.Kind == streams.Data {
			replayed = append(replayed, ev.ID)
		}
		return true
	})
	if err != nil || pos != jid(9) || fmt.Sprint(replayed) != fmt.Sprint([]string{jid(4), jid(6), jid(8)}) {
		t.Fatalf("replay through the operators: %v up to %q, %v", replayed, pos, err)
	}

	r := testkit.NewRecorder()
	s, err := h.Subscribe(spec, r, jid(3))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	log.append(4) // 11..14, live or replayed: the seam decides
	fs := r.Wait(t, 7)
	if testkit.Field(fs[0].Bytes, "event") != "connected" {
		t.Fatalf("first %q", fs[0].Bytes)
	}
	for i, n := range []int{4, 6, 8, 10, 12, 14} {
		f := fs[1+i]
		if f.ID != jid(n) || testkit.Field(f.Bytes, "id") != jid(n) {
			t.Fatalf("entry %d: id %q, want the journal's %q", n, f.ID, jid(n))
		}
		if got := frameData(t, f)["m"]; got != float64(n*10) {
			t.Fatalf("entry %d mapped to %v", n, got)
		}
	}

	// A resume from the last id on another process: nothing again.
	h2 := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h2.Close()
	r2 := testkit.NewRecorder()
	s2, _ := h2.Subscribe(spec, r2, jid(14))
	defer s2.Close()
	r2.Wait(t, 1)
	log.append(2)
	if f := r2.Wait(t, 2)[1]; f.ID != jid(16) {
		t.Fatalf("after resuming at 14 on another hub: %q", f.Bytes)
	}
	if n := r2.Count(); n != 2 {
		t.Fatalf("%d frames", n)
	}
}

func TestOpsOnDurableStatefulUseProcessIDs(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := newJlog("a")
	log.append(2)
	ops, err := streams.Ops{Throttle: time.Hour}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := streams.WithOps(log, ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.(streams.Durable); ok {
		t.Fatal("a throttled journal is still Durable: its output depends on when the pipeline started")
	}
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(spec, r, "")
	defer s.Close()
	c := r.Wait(t, 1)[0]
	if _, ok := h.ParseID(c.ID); !ok {
		t.Fatalf("connected id %q is not one of the process's", c.ID)
	}
	log.append(1) // throttle lets the first through at once
	f := r.Wait(t, 2)[1]
	if _, ok := h.ParseID(f.ID); !ok || f.ID == jid(3) {
		t.Fatalf("throttled event id %q, want one of the process's", f.ID)
	}
	// Same process: the ring resumes; another one: reset.
	r1 := testkit.NewRecorder()
	s1, _ := h.Subscribe(spec, r1, c.ID)
	defer s1.Close()
	if got := r1.Wait(t, 2); got[1].ID != f.ID {
		t.Fatalf("ring resume got %q", got[1].Bytes)
	}
	h2 := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h2.Close()
	r2 := testkit.NewRecorder()
	s2, _ := h2.Subscribe(spec, r2, f.ID)
	defer s2.Close()
	got := r2.Wait(t, 2)
	if fmt.Sprint(testkit.EventNames(got)) != "[connected reset]" || frameData(t, got[1])["reason"] != streams.ResetUnknownID {
		t.Fatalf("resume elsewhere: %q", got[1].Bytes)
	}
}

// Reset entries of a journal
// --------------------------

func TestDurableResetEntryCarriesItsID(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	log := newJlog("a")
	log.append(2)
	live := testkit.NewRecorder()
	s, _ := h.Subscribe(log, live, "")
	defer s.Close()
	live.Wait(t, 1)
	resetID := log.appendReset() // 3
	log.append(1)                // 4
	fs := live.Wait(t, 3)
	wantReset := func(who string, f *streams.Frame) {
		t.Helper()
		d := frameData(t, f)
		if testkit.Field(f.Bytes, "event") != "reset" || f.ID != resetID || testkit.Field(f.Bytes, "id") != resetID ||
			d["reason"] != streams.ResetGap || d["first"] != nil {
			t.Fatalf("%s: reset entry became %q", who, f.Bytes)
		}
	}
	wantReset("live", fs[1])
	if fs[2].ID != jid(4) {
		t.Fatalf("after the reset: %q", fs[2].Bytes)
	}

	// Replayed, on another process: the same frame; resumed past it: nothing.
	h2 := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h2.Close()
	before := testkit.NewRecorder()
	s2, _ := h2.Subscribe(log, before, jid(2))
	defer s2.Close()
	got := before.Wait(t, 3)
	wantReset("replayed", got[1])
	if got[2].ID != jid(4) {
		t.Fatalf("replay after the reset: %q", got[2].Bytes)
	}
	after := testkit.NewRecorder()
	s3, _ := h2.Subscribe(log, after, resetID)
	defer s3.Close()
	if got := after.Wait(t, 2); got[1].ID != jid(4) {
		t.Fatalf("resumed at the reset entry: %v", testkit.EventNames(got))
	}

	// A trimmed history keeps its meaning: no id, the first one left in data.
	log.trim(3)
	expired := testkit.NewRecorder()
	s4, _ := h2.Subscribe(log, expired, jid(1))
	defer s4.Close()
	got = expired.Wait(t, 3)
	if d := frameData(t, got[1]); got[1].ID != "" || d["reason"] != streams.ResetExpiredID || d["first"] != jid(4) {
		t.Fatalf("expired: %q", got[1].Bytes)
	}
}

// Position mode
// -------------

// posFrames checks a position-mode recording: no frame carries an id line
// but a position; every position has one component per journal; an
// entry's frame has its own id in its journal's component; components
// never go back. It returns the entries by journal and the last position.
func posFrames(t *testing.T, fs []*streams.Frame, logs ...string) (map[string][]int, streams.Position, string) {
	t.Helper()
	got := map[string][]int{}
	var last streams.Position
	lastID := ""
	for _, f := range fs {
		if bytes.Count(f.Bytes, []byte("id:")) > 1 || (f.ID == "") != !bytes.HasPrefix(f.Bytes, []byte("id: ")) {
			t.Fatalf("frame %q with id %q", f.Bytes, f.ID)
		}
		var entry struct {
			Log string
			N   int
		}
		if testkit.Field(f.Bytes, "event") == "entry" {
			_ = json.Unmarshal([]byte(testkit.Field(f.Bytes, "data")), &entry)
			got[entry.Log] = append(got[entry.Log], entry.N)
		}
		if f.ID == "" {
			continue
		}
		p, err := streams.DecodePosition(f.ID)
		if err != nil || len(p) != len(logs) {
			t.Fatalf("id %q: %v, %d components", f.ID, err, len(p))
		}
		for i := range p {
			if last != nil && p[i].Compare(last[i]) < 0 {
				t.Fatalf("component %d went back: %v then %v", i, last, p)
			}
		}
		if entry.Log != "" {
			i := slices.Index(logs, entry.Log)
			if p[i].String() != jid(entry.N) {
				t.Fatalf("entry %s/%d has position %v", entry.Log, entry.N, p)
			}
		}
		last, lastID = p, f.ID
	}
	return got, last, lastID
}

func wantSeq(t *testing.T, who string, got []int, from, to int) {
	t.Helper()
	var want []int
	for n := from; n <= to; n++ {
		want = append(want, n)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %d..%d", who, got, from, to)
	}
}

func pos(ns ...int) streams.Position {
	p := make(streams.Position, len(ns))
	for i, n := range ns {
		p[i], _ = streams.ParseEntryID(jid(n))
	}
	return p
}

func subscribeAll(t *testing.T, h *streams.Hub, r streams.Receiver, lastID string, specs ...streams.Spec) {
	t.Helper()
	joins := make([]streams.Join, len(specs))
	for i, s := range specs {
		joins[i] = streams.Join{Spec: s}
	}
	subs, err := h.SubscribeAll(joins, r, lastID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range subs {
			s.Close()
		}
	})
}

func TestPositionsLive(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	a, b := newJlog("a"), newJlog("b")
	a.append(3)
	b.append(2)
	r := testkit.NewRecorder()
	subscribeAll(t, h, r, "", a, b)
	fs := r.Wait(t, 2)
	// The two replays race; the later "connected" completes the position.
	if fs[0].ID != "" || fs[1].ID == "" {
		t.Fatalf("connected ids %q, %q", fs[0].ID, fs[1].ID)
	}
	if p, _ := streams.DecodePosition(fs[1].ID); fmt.Sprint(p) != fmt.Sprint(pos(3, 2)) {
		t.Fatalf("position after connecting %v", p)
	}
	a.append(2)
	b.append(1)
	got, last, _ := posFrames(t, r.Wait(t, 5), "a", "b")
	wantSeq(t, "a", got["a"], 4, 5)
	wantSeq(t, "b", got["b"], 3, 3)
	if fmt.Sprint(last) != fmt.Sprint(pos(5, 3)) {
		t.Fatalf("last position %v", last)
	}
}

// A client resuming with a position, on another process, gets exactly what
// each journal has after its component, then live events.
func TestPositionsResumeElsewhere(t *testing.T) {
	a, b := newJlog("a"), newJlog("b")
	a.append(5)
	b.append(5)
	h1 := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	r1 := testkit.NewRecorder()
	subscribeAll(t, h1, r1, encode(t, pos(0, 0)), a, b)
	got, _, _ := posFrames(t, r1.Wait(t, 12), "a", "b")
	wantSeq(t, "a", got["a"], 1, 5)
	wantSeq(t, "b", got["b"], 1, 5)
	a.append(3) // 6..8
	b.append(1) // 6
	all := r1.Wait(t, 16)
	posFrames(t, all, "a", "b")
	// Resume from the middle of the live part: after, say, the 14th frame.
	_, at, atID := posFrames(t, all[:14], "a", "b")
	h1.Close()
	a.append(2) // 9, 10
	b.append(3) // 7..9

	h2 := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h2.Close()
	r2 := testkit.NewRecorder()
	subscribeAll(t, h2, r2, atID, a, b)
	na, _ := jn(at[0].String())
	nb, _ := jn(at[1].String())
	want := 2 + (10 - na) + (9 - nb)
	fs := r2.Wait(t, want)
	for _, f := range fs {
		if testkit.Field(f.Bytes, "event") == "connected" && f.ID != "" {
			t.Fatalf("a resuming client's connected event carries id %q", f.ID)
		}
	}
	got, last, _ := posFrames(t, fs, "a", "b")
	wantSeq(t, "a", got["a"], na+1, 10)
	wantSeq(t, "b", got["b"], nb+1, 9)
	if fmt.Sprint(last) != fmt.Sprint(pos(10, 9)) {
		t.Fatalf("position after the replay %v", last)
	}
	a.append(1)
	fs = r2.Wait(t, want+1)
	if got, last, _ := posFrames(t, fs[want:], "a", "b"); fmt.Sprint(got["a"]) != "[11]" || fmt.Sprint(last) != fmt.Sprint(pos(11, 9)) {
		t.Fatalf("live after resuming: %v at %v", got, last)
	}
	if n := r2.Count(); n != want+1 {
		t.Fatalf("%d frames, want %d: duplicates", n, want+1)
	}
}

func encode(t *testing.T, p streams.Position) string {
	t.Helper()
	s, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Ids a position cannot be resumed from reset each journal (and the
// process-numbered topics of the same stream), and then give positions.
func TestPositionsUnknownIDsReset(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	a, b := newJlog("a"), newJlog("b")
	a.append(2)
	b.append(2)
	ring := newMemSpec("ring")
	for i, lastID := range []string{
		"garbage",
		encode(t, pos(1, 1, 1)), // a position of another stream
		jid(1),                  // a plain entry id is no position: each journal reads it as its own
		h.FutureID(1 << 20),
	} {
		r := testkit.NewRecorder()
		subscribeAll(t, h, r, lastID, a, ring, b)
		fs := r.Wait(t, 6)
		names := testkit.EventNames(fs)
		slices.Sort(names)
		wantResets := 3
		if i == 2 {
			wantResets = 1 // the ring's only
		}
		if fmt.Sprint(names[:3]) != "[connected connected connected]" || len(fs) != 6 {
			t.Fatalf("%q: %v", lastID, testkit.EventNames(fs))
		}
		resets := 0
		for _, f := range fs {
			if testkit.Field(f.Bytes, "event") == "reset" {
				resets++
				if d := frameData(t, f); d["reason"] != streams.ResetUnknownID || f.ID != "" {
					t.Fatalf("%q: %q", lastID, f.Bytes)
				}
			}
		}
		if i == 2 {
			// Entry 2 of each journal replays: six frames are three
			// connected, one reset and the two entries.
			if resets != wantResets {
				t.Fatalf("%q: %d resets", lastID, resets)
			}
			posFrames(t, fs, "a", "b")
			continue
		}
		if resets != wantResets {
			t.Fatalf("%q: %d resets in %v", lastID, resets, testkit.EventNames(fs))
		}
		_, last, _ := posFrames(t, fs, "a", "b")
		if fmt.Sprint(last) != fmt.Sprint(pos(2, 2)) {
			t.Fatalf("%q: position once connected %v", lastID, last)
		}
	}
}

// Replays of several journals run at once and interleave; each frame's
// position still holds exactly what the client has in every journal.
func TestPositionsConcurrentReplaysStayOrdered(t *testing.T) {
	const n = 300
	a, b := newJlog("a"), newJlog("b")
	a.gate, b.gate = make(chan struct{}), make(chan struct{})
	a.append(n)
	b.append(n)
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, ReplaySize: 8})
	defer h.Close()
	r := testkit.NewRecorder()
	subscribeAll(t, h, r, encode(t, pos(0, 0)), a, b)
	// Alternate the replays entry by entry, while live entries arrive too.
	go func() {
		for i := range n {
			a.gate <- struct{}{}
			b.gate <- struct{}{}
			if i%50 == 0 {
				a.append(1)
			}
		}
		close(a.gate)
		close(b.gate)
	}()
	const extra = n / 50
	got, last, lastID := posFrames(t, r.Wait(t, 2+2*n+extra), "a", "b")
	wantSeq(t, "a", got["a"], 1, n+extra)
	wantSeq(t, "b", got["b"], 1, n)
	if fmt.Sprint(last) != fmt.Sprint(pos(n+extra, n)) {
		t.Fatalf("last position %v", last)
	}
	// b's first entry came before a's last replayed one.
	at := func(log string, k int) int {
		for i, f := range r.Wait(t, 2+2*n) {
			if d := frameData(t, f); d["log"] == log && d["n"] == float64(k) {
				return i
			}
		}
		return -1
	}
	if at("b", 1) > at("a", n) {
		t.Fatal("the replays did not interleave")
	}
	// The last position resumes with nothing again.
	h2 := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h2.Close()
	r2 := testkit.NewRecorder()
	subscribeAll(t, h2, r2, lastID, a, b)
	r2.Wait(t, 2)
	b.append(1)
	got, _, _ = posFrames(t, r2.Wait(t, 3), "a", "b")
	if fmt.Sprint(got) != fmt.Sprintf("map[b:[%d]]", n+1) || r2.Count() != 3 {
		t.Fatalf("after resuming at the end: %v, %d frames", got, r2.Count())
	}
}

// One journal on its own keeps plain entry ids.
func TestPositionsNotForOneJournal(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	a := newJlog("a")
	a.append(1)
	r := testkit.NewRecorder()
	subscribeAll(t, h, r, "", a)
	if c := r.Wait(t, 1)[0]; c.ID != jid(1) {
		t.Fatalf("connected id %q", c.ID)
	}
	a.append(1)
	if f := r.Wait(t, 2)[1]; f.ID != jid(2) {
		t.Fatalf("entry id %q", f.ID)
	}
}

// A lone journal given a position of one component (a page that closed
// every other sub carries that sub's part over) resumes after it.
func TestPositionsLoneJournalResumesFromItsPart(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	a := newJlog("a")
	a.append(5)
	r := testkit.NewRecorder()
	subscribeAll(t, h, r, encode(t, pos(3)), a)
	fs := r.Wait(t, 3)
	if name := testkit.Field(fs[0].Bytes, "event"); name != "connected" {
		t.Fatalf("first frame %q", name)
	}
	for i, f := range fs[1:] {
		if f.ID != jid(4+i) || testkit.Field(f.Bytes, "event") == "reset" {
			t.Fatalf("frame %d: id %q %s, want entry %d", i+1, f.ID, f.Bytes, 4+i)
		}
	}
}

// A state stream beside a journal heals with a snapshot on every resume,
// and its frames carry no id of their own: only the journal's position.
func TestPositionsWithAStateStream(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	a, state := newJlog("a"), newStateSpec("state", "v0")
	a.append(2)
	r := testkit.NewRecorder()
	subscribeAll(t, h, r, "", state, a)
	r.Wait(t, 3) // two connected, the snapshot
	state.set("v1")
	state.emit(t, "update1")
	a.append(1)
	fs := r.Wait(t, 5)
	got, last, lastID := posFrames(t, fs, "a")
	if fmt.Sprint(got) != "map[a:[3]]" || fmt.Sprint(last) != fmt.Sprint(pos(3)) {
		t.Fatalf("got %v at %v: %v", got, last, testkit.EventNames(fs))
	}
	a.append(1)
	r2 := testkit.NewRecorder()
	subscribeAll(t, h, r2, lastID, state, a)
	fs = r2.Wait(t, 4)
	names := testkit.EventNames(fs)
	slices.Sort(names)
	if fmt.Sprint(names) != "[connected connected entry snapshot]" {
		t.Fatalf("resume: %v", testkit.EventNames(fs))
	}
	if got, last, _ := posFrames(t, fs, "a"); fmt.Sprint(got) != "map[a:[4]]" || fmt.Sprint(last) != fmt.Sprint(pos(4)) {
		t.Fatalf("resume replayed %v, at %v", got, last)
	}
}
