package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// clusterEvent is one frame of a keyspace stream on a cluster.
type clusterEvent struct {
	Name string
	streams.KeyspaceEvent
	Reset map[string]any
}

// clusterFrames decodes every frame r holds so far.
func clusterFrames(t *testing.T, r *testkit.Recorder) []clusterEvent {
	t.Helper()
	var out []clusterEvent
	for _, f := range r.Wait(t, r.Count()) {
		ev := clusterEvent{Name: testkit.Field(f.Bytes, "event")}
		data := testkit.Field(f.Bytes, "data")
		var err error
		switch ev.Name {
		case "reset":
			err = json.Unmarshal([]byte(data), &ev.Reset)
		case "connected":
		default:
			err = json.Unmarshal([]byte(data), &ev.KeyspaceEvent)
		}
		if err != nil {
			t.Fatalf("frame %q: %v", f.Bytes, err)
		}
		out = append(out, ev)
	}
	return out
}

// numpat is PUBSUB NUMPAT on one node.
func numpat(t *testing.T, c rueidis.Client) int64 {
	t.Helper()
	n, err := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// keysOn are n keys prefix<i> that master owns now, by the layout.
func keysOn(l Layout, master, prefix string, n int) []string {
	var out []string
	for i := 0; len(out) < n && i < 1<<20; i++ {
		k := prefix + strconv.Itoa(i)
		if l.Owner(KeySlot(k)) == master {
			out = append(out, k)
		}
	}
	return out
}

// writer SETs keys one after the other through the cluster client until
// stopped, and remembers the ones Redis acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []string
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(c rueidis.Client, keys func(i int) string) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			k := keys(i)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := c.Do(ctx, c.B().Set().Key(k).Value(strconv.Itoa(i)).Build()).Error()
			cancel()
			if err == nil {
				w.mu.Lock()
				w.acked = append(w.acked, k)
				w.mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond) // a steady flow, not a flood
		}
	}()
	return w
}

func (w *writer) finish() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// checkOnce waits until every acknowledged write's "set" arrived once, or
// a reset after frame from covers the missing ones; no key may arrive
// twice. It returns the resets seen.
func checkOnce(t *testing.T, r *testkit.Recorder, from int, acked []string) []map[string]any {
	t.Helper()
	var (
		counts map[string]int
		resets []map[string]any
	)
	tally := func() int {
		counts, resets = map[string]int{}, nil
		for _, ev := range clusterFrames(t, r)[from:] {
			if ev.Name == "reset" {
				resets = append(resets, ev.Reset)
			} else if ev.Name == "set" {
				counts[ev.Key]++
			}
		}
		missing := 0
		for _, k := range acked {
			if counts[k] == 0 {
				missing++
			}
		}
		return missing
	}
	deadline := time.Now().Add(5 * time.Second)
	missing := tally()
	for missing > 0 && len(resets) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // events still in flight
		missing = tally()
	}
	for _, k := range acked { // each written once, under a key of its own
		if n := counts[k]; n > 1 {
			t.Fatalf("%s delivered %d times", k, n)
		}
	}
	if missing > 0 && len(resets) == 0 {
		t.Fatalf("%d of %d acknowledged writes never arrived, and no reset covers them", missing, len(acked))
	}
	for _, rs := range resets {
		if rs["reason"] != streams.ResetGap {
			t.Fatalf("reset %v, want reason %s", rs, streams.ResetGap)
		}
	}
	t.Logf("%d writes, %d missing, resets %v", len(acked), missing, resets)
	return resets
}

// awaitFrom writes key until its "set" arrives from node (a subscription
// that is not yet live on a new master may miss the first writes).
func awaitFrom(t *testing.T, r *testkit.Recorder, c rueidis.Client, key, node string) {
	t.Helper()
	testkit.Eventually(t, key+" from "+node, func() bool {
		testkit.Do(t, c, "SET", key, "x")
		time.Sleep(20 * time.Millisecond) // give the event time to arrive
		for _, ev := range clusterFrames(t, r) {
			if ev.Name == "set" && ev.Key == key && ev.Node == node {
				return true
			}
		}
		return false
	})
}

func TestClusterKeyspace(t *testing.T) {
	cl := testkit.StartCluster(t, 3, 1)
	ctx := context.Background()
	conn, err := Open(ctx, Options{URL: cl.URL(), KeyspaceConfig: NotifyAuto, TopologyCheck: 100 * time.Millisecond, MaxPatterns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.Topology == nil || conn.Databases != 1 || conn.DB != 0 {
		t.Fatalf("cluster not detected: topology %v, databases %d", conn.Topology, conn.Databases)
	}
	masters, replicas := cl.Masters(t), cl.Replicas(t)
	if got := conn.Topology.Layout(); !slices.Equal(got.Masters(), masters) || got.Covered() != Slots {
		t.Fatalf("layout %v, want masters %v", got, masters)
	}
	for _, addr := range slices.Concat(masters, replicas) { // replicas too: one may be promoted
		cfg, _ := testkit.Do(t, cl.NodeClient(t, addr), "CONFIG", "GET", "notify-keyspace-events").AsStrMap()
		if Needed(cfg["notify-keyspace-events"]) != "" {
			t.Fatalf("%s: notify-keyspace-events %q", addr, cfg["notify-keyspace-events"])
		}
	}
	client := cl.Client(t)
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	r := testkit.NewRecorder()
	sub, _ := h.Subscribe(conn.Keyspace.Stream(streams.KeyspaceQuery{Pattern: "ck:*"}), r, "")
	defer sub.Close()
	if names := testkit.EventNames(r.Wait(t, 1)); names[0] != "connected" {
		t.Fatalf("first event %v", names)
	}
	if err := conn.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}

	t.Run("every master once", func(t *testing.T) {
		var want []string
		for _, m := range masters {
			k, h := cl.KeyOn(t, m, "ck:k:"), cl.KeyOn(t, m, "ck:h:")
			testkit.Do(t, client, "SET", k, "v")
			testkit.Do(t, client, "HSET", h, "f", "v")
			testkit.Do(t, client, "DEL", k)
			testkit.Do(t, client, "SET", k, "v")
			testkit.Do(t, client, "PEXPIRE", k, "30")
			testkit.Eventually(t, k+" expired", func() bool { // EXISTS expires it lazily if due
				n, _ := testkit.Do(t, client, "EXISTS", k).AsInt64()
				return n == 0
			})
			want = append(want, m+" set "+k, m+" hset "+h, m+" del "+k, m+" set "+k, m+" expire "+k, m+" expired "+k)
		}
		got := r.Wait(t, 1+len(want))
		// A last write on each master: its event comes after any
		// duplicate that master's connection could still carry, so once
		// all three are in, nothing else may have come.
		for _, m := range masters {
			testkit.Do(t, client, "SET", cl.KeyOn(t, m, "ck:last:"), "v")
		}
		r.Wait(t, 1+len(want)+len(masters))
		if r.Count() != 1+len(want)+len(masters) {
			t.Fatalf("%d frames, want %d: %v", r.Count(), 1+len(want)+len(masters), testkit.EventNames(r.Wait(t, r.Count())))
		}
		// Each master's events in its order; masters interleave freely.
		var have []string
		for _, m := range masters {
			for _, ev := range clusterFrames(t, r)[1:] {
				if ev.DB != 0 || ev.Event != ev.Name || ev.TS == 0 {
					t.Fatalf("event %+v", ev)
				}
				if ev.Node == m && !strings.HasPrefix(ev.Key, "ck:last:") {
					have = append(have, ev.Node+" "+ev.Name+" "+ev.Key)
				}
			}
		}
		if fmt.Sprint(have) != fmt.Sprint(want) {
			t.Fatalf("events\n%v\nwant\n%v", have, want)
		}
		data := testkit.Field(got[1].Bytes, "data")
		if !strings.HasPrefix(data, `{"key":"`) || !strings.Contains(data, `,"node":"127.0.0.1:`) || !strings.HasSuffix(data, `"}`) {
			t.Fatalf("data %s", data)
		}
	})

	t.Run("patterns on masters only", func(t *testing.T) {
		for _, m := range masters {
			if n := numpat(t, cl.NodeClient(t, m)); n != 1 {
				t.Fatalf("NUMPAT on master %s = %d, want 1", m, n)
			}
		}
		for _, rp := range replicas {
			if n := numpat(t, cl.NodeClient(t, rp)); n != 0 {
				t.Fatalf("NUMPAT on replica %s = %d, want 0", rp, n)
			}
		}
	})

	t.Run("failover", func(t *testing.T) {
		m := masters[0]
		promoted := cl.ReplicasOf(t, m)[0]
		keys := keysOn(conn.Topology.Layout(), m, "ck:f:", 5000)
		from := r.Count()
		w := startWriter(client, func(i int) string { return keys[i%len(keys)] + ":" + strconv.Itoa(i) })
		asked := time.Now()
		cl.Failover(t, promoted)
		awaitFrom(t, r, client, cl.KeyOn(t, promoted, "ck:after-failover:"), promoted)
		checkOnce(t, r, from, w.finish())
		for _, ev := range clusterFrames(t, r) {
			if ev.Node == promoted { // the writer's keys flow all along
				t.Logf("CLUSTER FAILOVER to the first event from the new master: %v", time.UnixMilli(ev.TS).Sub(asked))
				break
			}
		}
	})

	t.Run("kill", func(t *testing.T) {
		m := cl.Masters(t)[1]
		heir := cl.ReplicasOf(t, m)[0]
		keys := keysOn(conn.Topology.Layout(), m, "ck:x:", 5000)
		from := r.Count()
		w := startWriter(client, func(i int) string { return keys[i%len(keys)] + ":" + strconv.Itoa(i) })
		cl.Kill(t, m)
		awaitFrom(t, r, client, cl.KeyOn(t, heir, "ck:after-kill:"), heir)
		resets := checkOnce(t, r, from, w.finish())
		if len(resets) == 0 {
			t.Fatal("a master died under the stream, and it got no reset")
		}
	})

	t.Run("slot moved", func(t *testing.T) {
		slot := KeySlot("ck:{m}:") // the tag fixes the slot
		from := conn.Topology.Layout().Owner(slot)
		to := conn.Topology.Layout().Masters()[0]
		if to == from {
			to = conn.Topology.Layout().Masters()[1]
		}
		before := r.Count()
		w := startWriter(client, func(i int) string { return "ck:{m}:" + strconv.Itoa(i) })
		cl.MoveSlot(t, slot, to)
		awaitFrom(t, r, client, "ck:{m}:after", to)
		acked := w.finish()
		checkOnce(t, r, before, acked)
		for _, ev := range clusterFrames(t, r)[before:] {
			if ev.Name == "reset" {
				t.Fatalf("a slot moved between subscribed masters caused a reset: %v", ev.Reset)
			}
		}
	})

	t.Run("master added", func(t *testing.T) {
		added := cl.AddMaster(t)
		node := cl.NodeClient(t, added)
		testkit.Eventually(t, "subscribed on the new master", func() bool { return numpat(t, node) == 1 })
		testkit.Eventually(t, "flags applied on the new master", func() bool {
			cfg, _ := testkit.Do(t, node, "CONFIG", "GET", "notify-keyspace-events").AsStrMap()
			return Needed(cfg["notify-keyspace-events"]) == ""
		})
		cl.MoveSlot(t, KeySlot("ck:{n}:"), added)
		awaitFrom(t, r, client, "ck:{n}:1", added)
		if err := conn.Ready(ctx); err != nil {
			t.Fatalf("ready: %v", err)
		}
	})

	t.Run("released", func(t *testing.T) {
		sub.Close()
		for _, addr := range slices.Concat(cl.Masters(t), cl.Replicas(t)) {
			node := cl.NodeClient(t, addr)
			testkit.Eventually(t, "NUMPAT 0 on "+addr, func() bool { return numpat(t, node) == 0 })
		}
	})
}

// Mode none never sends CONFIG: it probes each master with a key of its
// own slots, and names the master whose notifications are off.
func TestClusterNotifyNone(t *testing.T) {
	cl := testkit.StartCluster(t, 3, 0, "--notify-keyspace-events", "KA")
	conn, err := Open(context.Background(), Options{URL: cl.URL(), KeyspaceConfig: NotifyNone, KeyspaceCheck: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ready(context.Background()); err != nil {
		t.Fatalf("ready with the flags on every master: %v", err)
	}
	off := cl.Masters(t)[1]
	testkit.Do(t, cl.NodeClient(t, off), "CONFIG", "SET", "notify-keyspace-events", "")
	err = conn.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "on cluster master "+off) {
		t.Fatalf("ready with the flags off on %s: %v", off, err)
	}
	cfg, _ := testkit.Do(t, cl.NodeClient(t, off), "CONFIG", "GET", "notify-keyspace-events").AsStrMap()
	if cfg["notify-keyspace-events"] != "" {
		t.Fatalf("mode none changed %s's flags: %q", off, cfg["notify-keyspace-events"])
	}
}

func TestPatternSlot(t *testing.T) {
	for pattern, want := range map[string]int{
		"user:1":  KeySlot("user:1"),
		"{u1}:*":  KeySlot("u1"),
		"a{u1}b*": KeySlot("u1"),
		"*{u1}":   -1,
		"{}*":     -1,
		"{u*}":    -1,
		"user:*":  -1,
		"x{y}\\*": KeySlot("y"),
		"\\*{y}":  -1,
	} {
		got, ok := PatternSlot(pattern)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("PatternSlot(%q) = %d, want %d", pattern, got, want)
		}
	}
	if KeySlot("123456789") != 0x31C3%Slots { // CRC-16/XMODEM check value
		t.Fatalf("KeySlot check value %d", KeySlot("123456789"))
	}
}

func TestConcerned(t *testing.T) {
	var lost SlotSet
	lost.add(SlotRange{KeySlot("a"), KeySlot("a")})
	for _, c := range []struct {
		t    Target
		want bool
	}{
		{Target{Name: "__keyspace@0__:*", Pattern: true}, true},
		{Target{Name: "__keyspace@0__:a", Pattern: true}, true},
		{Target{Name: "__keyspace@0__:{a}:*", Pattern: true}, true},
		{Target{Name: "__keyspace@0__:{b}:*", Pattern: true}, KeySlot("b") == KeySlot("a")},
		{Target{Name: "__keyspace@0__:b"}, false},
	} {
		if got := concerned(c.t, &lost); got != c.want {
			t.Errorf("concerned(%q) = %v", c.t.Name, got)
		}
	}
	if concerned(Target{Name: "__keyspace@0__:*", Pattern: true}, &SlotSet{}) {
		t.Error("no slot lost concerns a stream")
	}
}

func TestTopologyDiff(t *testing.T) {
	a, b, c := "10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"
	old := Layout{Shards: []Shard{
		{Master: a, Slots: []SlotRange{{0, 8191}}, Replicas: []string{c}},
		{Master: b, Slots: []SlotRange{{8192, 16383}}},
	}}
	// c promoted in a's place.
	failover := diff(old, Layout{Shards: []Shard{
		{Master: b, Slots: []SlotRange{{8192, 16383}}},
		{Master: c, Slots: []SlotRange{{0, 8191}}, Replicas: []string{a}},
	}})
	if fmt.Sprint(failover.Removed, failover.Added) != "["+a+"] ["+c+"]" || failover.Moved ||
		!failover.Lost.Has(0) || !failover.Lost.Has(8191) || failover.Lost.Has(8192) || len(failover.NewNodes) != 0 {
		t.Fatalf("failover %+v", failover)
	}
	if d := failover.Describe(); d != "master "+a+" gone or demoted, master "+c+" added or promoted" {
		t.Fatalf("describe %q", d)
	}
	// One slot moved from a to b: nothing lost, both stay subscribed.
	moved := diff(old, Layout{Shards: []Shard{
		{Master: a, Slots: []SlotRange{{0, 8190}}, Replicas: []string{c}},
		{Master: b, Slots: []SlotRange{{8191, 16383}}},
	}})
	if !moved.Moved || !moved.Lost.Empty() || len(moved.Added)+len(moved.Removed) != 0 || moved.Describe() != "slots moved" {
		t.Fatalf("moved %+v", moved)
	}
	// A slotless master joins: subscribed, nothing lost, its flags applied.
	d := "10.0.0.4:7000"
	added := diff(old, Layout{Shards: append(slices.Clone(old.Shards), Shard{Master: d})})
	if fmt.Sprint(added.Added) != "["+d+"]" || !added.Lost.Empty() || fmt.Sprint(added.NewNodes) != "["+d+"]" {
		t.Fatalf("added %+v", added)
	}
	if old.Covered() != Slots || old.Owner(8192) != b || old.Owner(-1) != "" {
		t.Fatalf("layout %v", old)
	}
}
