package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/redis/redisserver"
	"github.com/keyflux/keyflux/streams/testkit"
)

func msgs(prefix string, from, to int) []seen {
	var s []seen
	for i := from; i < to; i++ {
		s = append(s, seen{"ch", prefix + strconv.Itoa(i)})
	}
	return s
}

func TestGuess(t *testing.T) {
	tick := slices.Repeat([]seen{{"ch", "tick"}}, 50)
	for _, c := range []struct {
		name         string
		tail, record []seen
		want         int
	}{
		{"short overlap", msgs("m", 0, 100), msgs("m", 95, 130), 4},
		{"no overlap", msgs("m", 0, 100), msgs("m", 200, 300), -1},
		{"repeats: the earliest fit", tick, tick, 0},
		{"empty journal", nil, msgs("m", 0, 3), -1},
	} {
		if got := guess(c.tail, c.record); got != c.want {
			t.Errorf("%s: guess = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestAlign(t *testing.T) {
	same := func(n int) []seen { return slices.Repeat([]seen{{"job:42", "set"}}, n) }
	for _, c := range []struct {
		name   string
		tail   []seen
		record []seen
		whole  bool
		at     int
		ok     bool
	}{
		{"overlap", msgs("m", 0, 100), msgs("m", 50, 130), false, 49, true},
		{"record ends at the journal's end", msgs("m", 0, 100), msgs("m", 50, 100), false, 49, true},
		{"journal inside the record", msgs("m", 10, 20), msgs("m", 0, 40), true, 19, true},
		{"empty journal", nil, msgs("m", 0, 5), true, -1, true},
		{"empty journal, but not from its start", nil, msgs("m", 0, 5), false, 0, false},
		{"overlap too short to prove", msgs("m", 0, 100), msgs("m", 95, 130), false, 0, false},
		{"no overlap", msgs("m", 0, 100), msgs("m", 200, 300), false, 0, false},
		{"the stream repeats itself", same(100), same(300), false, 0, false},
		{"a gap inside the overlap", msgs("m", 0, 100), append(msgs("m", 50, 70), msgs("m", 71, 120)...), false, 0, false},
		{"short journal since a reset, wholly seen", msgs("m", 0, 3), msgs("m", 0, 10), true, 2, true},
		{"short journal since a reset, partly seen", msgs("m", 0, 3), msgs("m", 1, 10), true, 0, false},
	} {
		at, ok := align(c.tail, c.record, c.whole)
		if ok != c.ok || (ok && at != c.at) {
			t.Errorf("%s: align = %d, %v; want %d, %v", c.name, at, ok, c.at, c.ok)
		}
	}
}

// instance is one Keyflux process's journal side: its own Redis client,
// subscriptions, journals and hub.
type instance struct {
	c    rueidis.Client
	js   *Journals
	ch   *Channels
	ks   *Keyspace
	hub  *streams.Hub
	stop func()
}

func newInstance(t *testing.T, srv *redisserver.Server, name string, lease time.Duration) *instance {
	c := testkit.NewClient(t, srv)
	up := &Upstreams{Client: c}
	js := &Journals{Client: c, Upstreams: up, Lease: lease, Owner: name, MaxLen: 10000, TTL: time.Hour}
	in := &instance{c: c, js: js, ch: &Channels{Upstreams: up, Journals: js}, ks: &Keyspace{Upstreams: up, Journals: js},
		hub: streams.NewHub(streams.HubOptions{})}
	stopped := false
	in.stop = func() {
		if !stopped {
			stopped = true
			in.hub.Close()
			js.Close()
			up.Wait(5 * time.Second)
		}
	}
	t.Cleanup(in.stop)
	return in
}

func writerOf(t *testing.T, key string, ins ...*instance) *instance {
	t.Helper()
	var w *instance
	testkit.Eventually(t, "a journal writer", func() bool {
		n := 0
		for _, in := range ins {
			if slices.Contains(in.js.Writing(), key) {
				w, n = in, n+1
			}
		}
		return n == 1
	})
	return w
}

// payloads returns the data of the frames, and fails on any but "message"
// and "connected" events.
func payloads(t *testing.T, fs []*streams.Frame) (data, ids []string) {
	t.Helper()
	for _, f := range fs {
		switch ev := testkit.Parse(f.Bytes); ev.Type {
		case "connected":
		case "message", "":
			data, ids = append(data, ev.Data), append(ids, ev.LastEventID)
		default:
			t.Fatalf("unexpected %q event: %s", ev.Type, f.Bytes)
		}
	}
	return data, ids
}

func publishRange(t *testing.T, c rueidis.Client, ch string, from, to int) {
	for i := from; i < to; i++ {
		testkit.Do(t, c, "PUBLISH", ch, "n="+strconv.Itoa(i))
	}
}

func want(from, to int) string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, "n="+strconv.Itoa(i))
	}
	return strings.Join(s, " ")
}

// Two processes serve the same channel: the same events with the same ids,
// and a graceful stop of the writer hands over with nothing lost.
func TestJournalTwoProcessesSameIDsAndHandover(t *testing.T) {
	srv, c := testkit.Redis(t)
	a, b := newInstance(t, srv, "a", 400*time.Millisecond), newInstance(t, srv, "b", 400*time.Millisecond)
	ra, rb := testkit.NewRecorder(), testkit.NewRecorder()
	q := streams.ChannelQuery{Name: "news"}
	if _, err := a.hub.Subscribe(a.ch.Stream(q), ra, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.hub.Subscribe(b.ch.Stream(q), rb, ""); err != nil {
		t.Fatal(err)
	}
	ra.Wait(t, 1)
	rb.Wait(t, 1)
	key := ChannelJournal("news", false)
	w := writerOf(t, key, a, b)
	publishRange(t, c, "news", 0, 50)
	da, ia := payloads(t, ra.Wait(t, 51))
	db, ib := payloads(t, rb.Wait(t, 51))
	if strings.Join(da, " ") != want(0, 50) || fmt.Sprint(ia) != fmt.Sprint(ib) || fmt.Sprint(da) != fmt.Sprint(db) {
		t.Fatalf("a got %v %v\nb got %v %v", da, ia, db, ib)
	}
	if _, ok := streams.ParseEntryID(ia[0]); !ok {
		t.Fatalf("id %q is not a journal entry id", ia[0])
	}
	// The writer stops while messages flow; the other takes over.
	other, ro := b, rb
	if w == b {
		other, ro = a, ra
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishRange(t, c, "news", 50, 300)
	}()
	w.stop()
	<-done
	writerOf(t, key, other)
	d, ids := payloads(t, ro.Wait(t, 301))
	if strings.Join(d, " ") != want(0, 300) {
		t.Fatalf("after the handover got %v", d)
	}
	// A client with any id resumes exactly, on the process left.
	r := testkit.NewRecorder()
	if _, err := other.hub.Subscribe(other.ch.Stream(q), r, ids[99]); err != nil {
		t.Fatal(err)
	}
	if d, _ := payloads(t, r.Wait(t, 201)); strings.Join(d, " ") != want(100, 300) {
		t.Fatalf("resumed with %v", d)
	}
}

// A writer that vanishes without a word (its connection gone, its lease
// left to expire) is replaced. The new writer places the journal's end in
// what it saw and appends exactly what is missing; a stream that repeats
// itself cannot prove where the journal ends, so there the new writer
// records a reset, with an id.
func TestJournalTakeoverAfterAVanishedWriter(t *testing.T) {
	for _, c := range []struct {
		name    string
		payload func(i int) string
		reset   bool
	}{
		{"distinct messages: exact", func(i int) string { return "n=" + strconv.Itoa(i) }, false},
		{"a stream that repeats itself: reset", func(int) string { return "tick" }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, rc := testkit.Redis(t)
			a, b := newInstance(t, srv, "a", 300*time.Millisecond), newInstance(t, srv, "b", 300*time.Millisecond)
			q := streams.ChannelQuery{Name: "ch"}
			ra, rb := testkit.NewRecorder(), testkit.NewRecorder()
			_, _ = a.hub.Subscribe(a.ch.Stream(q), ra, "")
			_, _ = b.hub.Subscribe(b.ch.Stream(q), rb, "")
			ra.Wait(t, 1)
			rb.Wait(t, 1)
			key := ChannelJournal("ch", false)
			w := writerOf(t, key, a, b)
			other, ro := b, rb
			if w == b {
				other, ro = a, ra
			}
			for i := range 40 {
				testkit.Do(t, rc, "PUBLISH", "ch", c.payload(i))
			}
			ro.Wait(t, 41)
			// The writer vanishes: its client is closed, its lease left to expire.
			w.c.Close()
			for i := 40; i < 80; i++ {
				testkit.Do(t, rc, "PUBLISH", "ch", c.payload(i))
			}
			writerOf(t, key, other)
			testkit.Do(t, rc, "PUBLISH", "ch", "after")
			var fs []*streams.Frame
			testkit.Eventually(t, "the message after the takeover", func() bool {
				fs = ro.Wait(t, ro.Count())
				return testkit.Field(fs[len(fs)-1].Bytes, "data") == "after"
			})
			var got []string
			var reset *streams.Frame
			for _, f := range fs[1 : len(fs)-1] {
				if testkit.Field(f.Bytes, "event") == "reset" {
					reset = f
					continue
				}
				got = append(got, testkit.Field(f.Bytes, "data"))
			}
			if !c.reset {
				if reset != nil || len(got) != 80 || got[79] != c.payload(79) || got[40] != c.payload(40) {
					t.Fatalf("got %v, reset %v; want every message once", got, reset)
				}
				return
			}
			if reset == nil || !strings.Contains(string(reset.Bytes), `"reason":"upstream-gap"`) || reset.ID == "" {
				t.Fatalf("reset frame %v", reset)
			}
		})
	}
}

// Many journals share a few readers, and everything goes once the last
// client leaves: subscriptions, readers' connections, leases.
func TestJournalManyJournalsThenNothingLeft(t *testing.T) {
	srv, c := testkit.Redis(t)
	in := newInstance(t, srv, "a", 300*time.Millisecond)
	const n = 2*readerJournals + 5
	recs := make([]*testkit.Recorder, n)
	subs := make([]*streams.Subscription, n)
	for i := range n {
		recs[i] = testkit.NewRecorder()
		var err error
		if subs[i], err = in.hub.Subscribe(in.ch.Stream(streams.ChannelQuery{Name: "room:" + strconv.Itoa(i)}), recs[i], ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		recs[i].Wait(t, 1)
	}
	testkit.Eventually(t, "a writer for every journal", func() bool { return len(in.js.Writing()) == n })
	for i := range n {
		testkit.Do(t, c, "PUBLISH", "room:"+strconv.Itoa(i), "hello "+strconv.Itoa(i))
	}
	for i := range n {
		if d, _ := payloads(t, recs[i].Wait(t, 2)); d[0] != "hello "+strconv.Itoa(i) {
			t.Fatalf("room %d got %v", i, d)
		}
	}
	if shards := len(in.js.readers.shards); shards != 3 {
		t.Fatalf("%d journals read by %d readers, want 3", n, shards)
	}
	for _, s := range subs {
		s.Close()
	}
	testkit.Eventually(t, "journals stopped, leases released", func() bool {
		subs, _ := testkit.Do(t, c, "PUBSUB", "NUMSUB", "room:0").ToArray()
		leases, _ := testkit.Do(t, c, "KEYS", "{keyflux:journal:*}:lease").AsStrSlice()
		cnt, _ := subs[1].AsInt64()
		return len(in.js.Writing()) == 0 && len(leases) == 0 && cnt == 0
	})
}

// A journaled keyspace stream: entry ids, the entry's time as ts, its own
// pattern and events, and never the journal's own keys.
func TestJournalKeyspace(t *testing.T) {
	srv, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	in := newInstance(t, srv, "a", 300*time.Millisecond)
	all, jobs := testkit.NewRecorder(), testkit.NewRecorder()
	_, _ = in.hub.Subscribe(in.ks.Stream(streams.KeyspaceQuery{Pattern: "*"}), all, "")
	_, _ = in.hub.Subscribe(in.ks.Stream(streams.KeyspaceQuery{Pattern: "job:*", Events: []string{"del"}}), jobs, "")
	all.Wait(t, 1)
	jobs.Wait(t, 1)
	writerOf(t, KeyspaceJournal(0), in)
	testkit.Do(t, c, "SET", "job:1", "x")
	testkit.Do(t, c, "SET", "other", "x")
	testkit.Do(t, c, "DEL", "job:1")
	got := all.Wait(t, 4)
	if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected set set del]" {
		t.Fatalf("events %v", names)
	}
	var ev streams.KeyspaceEvent
	if err := json.Unmarshal([]byte(testkit.Field(got[1].Bytes, "data")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Key != "job:1" || ev.TS != entryMillis(got[1].ID) {
		t.Fatalf("event %+v with id %s", ev, got[1].ID)
	}
	del := jobs.Wait(t, 2)[1]
	if del.ID != got[3].ID || testkit.Field(del.Bytes, "event") != "del" {
		t.Fatalf("job:* del frame %q, want id %s", del.Bytes, got[3].ID)
	}
	// Nothing else arrived: the journal's own appends and lease are not events.
	testkit.Do(t, c, "SET", "last", "x")
	if f := all.Wait(t, 5)[4]; !strings.Contains(string(f.Bytes), `"key":"last"`) {
		t.Fatalf("unexpected event %q", f.Bytes)
	}
}

// A client from a process further ahead resumes here with nothing
// replayed and its position kept; an id past the journal's end is unknown.
func TestJournalReplayFromAProcessAhead(t *testing.T) {
	srv, c := testkit.Redis(t)
	in := newInstance(t, srv, "a", 300*time.Millisecond)
	spec := in.ch.Stream(streams.ChannelQuery{Name: "ahead"}).(*journaled)
	key := ChannelJournal("ahead", false)
	var ids []string
	for i := range 3 {
		id, err := c.Do(context.Background(), c.B().Xadd().Key(key).Id("*").FieldValue().FieldValue("channel", "ahead").FieldValue("message", strconv.Itoa(i)).Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var got []streams.Event
	emit := func(ev streams.Event) bool { got = append(got, ev); return true }
	pos, err := spec.Replay(context.Background(), ids[2], ids[0], emit)
	if err != nil || pos != ids[2] || len(got) != 1 || got[0].Kind != streams.Ready {
		t.Fatalf("Replay from ahead = %q, %v, %+v", pos, err, got)
	}
	got = nil
	if _, err := spec.Replay(context.Background(), "99999999999999-0", ids[2], emit); err != nil || len(got) != 2 || got[1].Code != streams.ResetUnknownID {
		t.Fatalf("Replay past the end: %v, %+v", err, got)
	}
	got = nil
	if pos, err := spec.Replay(context.Background(), ids[0], ids[2], emit); err != nil || pos != ids[2] || len(got) != 3 || got[2].ID != ids[2] {
		t.Fatalf("Replay after the first: %q, %v, %+v", pos, err, got)
	}
}
