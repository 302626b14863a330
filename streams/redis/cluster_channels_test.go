package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// One cluster (3 masters, 1 replica each) for every pub/sub, Redis Streams
// and key watch check below, in order: starting one costs seconds.
func TestClusterChannelsLogsAndWatches(t *testing.T) {
	c := testkit.StartCluster(t, 3, 1, "--notify-keyspace-events", "KA")
	cl := c.Client(t)
	h := streams.NewHub(streams.HubOptions{})
	defer h.Close()
	up := &Upstreams{Client: cl}
	defer up.Wait(5 * time.Second)
	ch := &Channels{Upstreams: up}

	t.Run("ordinary pub/sub once from every node", func(t *testing.T) {
		r := testkit.NewRecorder()
		s, _ := h.Subscribe(ch.Stream(streams.ChannelQuery{Name: "news"}), r, "")
		defer s.Close()
		r.Wait(t, 1)
		// A cluster copies PUBLISH to every node: one SUBSCRIBE anywhere
		// hears it, whichever node it was published on, once.
		var sent []string
		for i, addr := range append(c.Masters(t), c.Replicas(t)...) {
			msg := "m" + strconv.Itoa(i)
			testkit.Do(t, c.NodeClient(t, addr), "PUBLISH", "news", msg)
			sent = append(sent, msg)
			r.Wait(t, 1+len(sent))
		}
		testkit.Do(t, cl, "PUBLISH", "news", "end")
		got := frameData(r.Wait(t, len(sent)+2)[1:])
		if want := append(sent, "end"); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if n := subscribers(t, c, "NUMSUB", "news"); n != 1 {
			t.Fatalf("%d SUBSCRIBEs in the cluster for one stream", n)
		}
	})

	t.Run("ordinary pub/sub outlives its node", func(t *testing.T) {
		r := testkit.NewRecorder()
		s, _ := h.Subscribe(ch.Stream(streams.ChannelQuery{Name: "alerts"}), r, "")
		defer s.Close()
		r.Wait(t, 1)
		// rueidis subscribes on some node; that node dies.
		var node string
		for _, addr := range append(c.Masters(t), c.Replicas(t)...) {
			if numsub(t, c, addr, "alerts") == 1 {
				node = addr
			}
		}
		if node == "" {
			t.Fatal("subscribed nowhere")
		}
		if !slices.Contains(c.Masters(t), node) {
			c.Failover(t, node) // Kill takes a master
		}
		c.Kill(t, node)
		fs := r.Wait(t, 2)
		if ev, data := testkit.Field(fs[1].Bytes, "event"), testkit.Field(fs[1].Bytes, "data"); ev != "reset" || !strings.Contains(data, streams.ResetGap) {
			t.Fatalf("after its node died: %s %s", ev, data)
		}
		// The reset comes once the new SUBSCRIBE is confirmed. Publish on
		// the node that holds it: right after a failover, a node may still
		// be reconnecting its cluster bus links, and Redis forwards PUBLISH
		// only over links that are up (the test above covers forwarding).
		if n := subscribers(t, c, "NUMSUB", "alerts"); n != 1 {
			t.Fatalf("%d SUBSCRIBEs in the cluster after the failover", n)
		}
		var now string
		for _, addr := range append(c.Masters(t), c.Replicas(t)...) {
			if numsub(t, c, addr, "alerts") == 1 {
				now = addr
			}
		}
		testkit.Do(t, c.NodeClient(t, now), "PUBLISH", "alerts", "after")
		testkit.Do(t, c.NodeClient(t, now), "PUBLISH", "alerts", "end")
		if got := frameData(r.Wait(t, 4)[2:]); fmt.Sprint(got) != "[after end]" {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("sharded pub/sub follows its slot", func(t *testing.T) {
		const channel = "orders"
		r := testkit.NewRecorder()
		s, _ := h.Subscribe(ch.Stream(streams.ChannelQuery{Name: channel, Sharded: true}), r, "")
		defer s.Close()
		r.Wait(t, 1)
		from := ownerOf(t, c, channel)
		if n := shardSubscribers(t, c, from, channel); n != 1 {
			t.Fatalf("SHARDNUMSUB on the slot owner %s: %d", from, n)
		}
		publish := func(msg string) {
			if n, err := ch.Publish(context.Background(), channel, true, []byte(msg)); err != nil || n != 1 {
				t.Fatalf("SPUBLISH %s: %d receivers, %v", msg, n, err)
			}
		}
		publish("a")
		publish("b")
		to := otherMaster(t, c, from)
		c.MoveSlot(t, testkit.KeySlot(channel), to)
		// Redis ends the subscription when the slot leaves: Keyflux
		// subscribes on the new owner and says messages may be lost.
		fs := r.Wait(t, 4)
		if ev := testkit.Field(fs[3].Bytes, "event"); ev != "reset" || !json.Valid([]byte(testkit.Field(fs[3].Bytes, "data"))) {
			t.Fatalf("after the slot moved: %s %s", ev, fs[3].Bytes)
		}
		if reason := testkit.Field(fs[3].Bytes, "data"); !strings.Contains(reason, streams.ResetGap) || !strings.Contains(reason, "slot moved") {
			t.Fatalf("reset %s", reason)
		}
		if shardSubscribers(t, c, to, channel) != 1 || shardSubscribers(t, c, from, channel) != 0 {
			t.Fatal("the sharded subscription did not move with its slot")
		}
		publish("c")
		publish("d")
		if got := frameData(r.Wait(t, 6)); fmt.Sprint(got[1:3], got[4:]) != "[a b] [c d]" {
			t.Fatalf("got %v", got)
		}
		s.Close()
		testkit.Eventually(t, "SUNSUBSCRIBE", func() bool { return shardSubscribers(t, c, to, channel) == 0 })
	})

	t.Run("stream log resumes exactly across a resharding", func(t *testing.T) {
		logs := &StreamLogs{Client: cl}
		key := c.KeyOn(t, c.Masters(t)[0], "log:")
		r := testkit.NewRecorder()
		spec := logs.Stream(streams.StreamLogQuery{Key: key})
		s, _ := h.Subscribe(spec, r, "")
		defer s.Close()
		r.Wait(t, 1)
		// Entries are added before, while and after the slot moves.
		var added64 atomic.Int64
		stop, added := make(chan struct{}), make(chan error, 1)
		appendOne := func() error {
			i := added64.Load()
			if _, err := logs.Append(context.Background(), key, []string{"n", strconv.FormatInt(i, 10)}, 0); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			added64.Add(1)
			return nil
		}
		go func() {
			for {
				select {
				case <-stop:
					added <- nil
					return
				default:
				}
				if err := appendOne(); err != nil {
					added <- err
					return
				}
			}
		}()
		testkit.Eventually(t, "entries before the move", func() bool { return added64.Load() >= 50 })
		c.MoveSlot(t, testkit.KeySlot(key), otherMaster(t, c, ownerOf(t, c, key)))
		during := added64.Load()
		close(stop)
		if err := <-added; err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if err := appendOne(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%d entries, %d of them before the move ended", added64.Load(), during)
		n := int(added64.Load())
		fs := r.Wait(t, 1+n)[1:]
		checkEntries(t, fs, 0, n)
		// A client resuming after entry 99 gets 100.. from Redis itself,
		// now on the new owner.
		again := testkit.NewRecorder()
		s2, err := h.Subscribe(spec, again, testkit.Field(fs[99].Bytes, "id"))
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		checkEntries(t, again.Wait(t, 1+n-100)[1:], 100, n)
		if r.Count() != 1+n {
			t.Fatalf("%d frames: an entry came twice", r.Count())
		}
	})

	t.Run("key watches across failovers and a migration", func(t *testing.T) {
		ctx := context.Background()
		topo, err := StartTopology(ctx, rueidis.ClientOption{InitAddress: c.Masters(t)}, 200*time.Millisecond, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		defer topo.Close()
		inv := &Invalidations{Cluster: true}
		cache, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Masters(t),
			PipelineMultiplex: -1, OnInvalidations: inv.OnInvalidations})
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		cu := &ClusterUpstreams{Topology: topo}
		defer cu.Close(5 * time.Second)
		var reads counted
		kw := &KeyWatches{Values: &Values{Client: cache, Cached: true, Reads: &reads}, Invalidations: inv, Cluster: cu}
		var keys []string
		recs := map[string]*testkit.Recorder{}
		// keys[0] and keys[2] on masters with a replica (one failover
		// each), keys[1] on the third (an earlier kill left one without).
		masters := c.Masters(t)
		slices.SortStableFunc(masters, func(a, b string) int { return len(c.ReplicasOf(t, b)) - len(c.ReplicasOf(t, a)) })
		masters[1], masters[2] = masters[2], masters[1]
		for i, m := range masters {
			key := c.KeyOn(t, m, "watch:")
			keys = append(keys, key)
			testkit.Do(t, cl, "SET", key, "v"+strconv.Itoa(i))
			recs[key] = testkit.NewRecorder()
			s, _ := h.Subscribe(kw.Stream(key), recs[key], "")
			defer s.Close()
		}
		for i, key := range keys {
			expectKeyEvent(t, recs[key], 2, "snapshot", `"v`+strconv.Itoa(i)+`"`)
			testkit.Do(t, cl, "SET", key, "w"+strconv.Itoa(i))
			expectKeyEvent(t, recs[key], 3, "update", `"w`+strconv.Itoa(i)+`"`)
		}
		// settled waits until the keyspace channels are subscribed on the
		// masters Redis has now, and on them only.
		settled := func() {
			t.Helper()
			testkit.Eventually(t, "subscribed on the current masters", func() bool {
				subs := cu.Subscriptions()
				return cu.Ready() == nil && len(subs) == len(c.Masters(t)) && subs[c.Masters(t)[0]] == len(keys)
			})
		}

		// CLUSTER FAILOVER of the first key's master, then a kill -9 of the
		// last key's: nothing changed, so nothing is sent (neither the
		// topology changes nor Recheck send a snapshot); then changes on the
		// new masters arrive, deletions with their reason.
		c.Failover(t, c.ReplicasOf(t, ownerOf(t, c, keys[0]))[0])
		c.Kill(t, ownerOf(t, c, keys[2]))
		settled()
		kw.Recheck(nil)
		for i, key := range keys {
			testkit.Do(t, cl, "SET", key, "x"+strconv.Itoa(i))
			expectKeyEvent(t, recs[key], 4, "update", `"x`+strconv.Itoa(i)+`"`)
		}
		testkit.Do(t, cl, "DEL", keys[2])
		expectKeyEvent(t, recs[keys[2]], 5, "delete", `"del"`)

		// A slot migration moves the key without changing it; the read
		// its invalidation causes, while the slot migrates, is not tracked
		// (see Recheck), so only the recheck after the move lets the
		// deletion below be seen.
		readsBefore := reads.Load()
		from := ownerOf(t, c, keys[1])
		migrate(t, c, testkit.KeySlot(keys[1]), from, otherMaster(t, c, from), func() {
			testkit.Eventually(t, "the key read while its slot migrates", func() bool { return reads.Load() >= readsBefore+2 })
		})
		settled()
		testkit.Do(t, cl, "DEL", keys[1])
		expectKeyEvent(t, recs[keys[1]], 5, "delete", `"del"`)
		testkit.Do(t, cl, "SET", keys[0], "y")
		expectKeyEvent(t, recs[keys[0]], 5, "update", `"y"`)
		for _, key := range keys {
			if n := recs[key].Count(); n != 5 {
				t.Fatalf("%s: %d frames, want 5: %v", key, n, testkit.EventNames(recs[key].Wait(t, n)))
			}
		}
	})
}

type counted struct{ atomic.Int64 }

func (c *counted) Inc() { c.Add(1) }

// migrate moves slot from one master to another as MoveSlot does, with
// during run between the MIGRATE of its keys and their new owner's taking
// the slot over.
func migrate(t *testing.T, c *testkit.Cluster, slot int, from, to string, during func()) {
	t.Helper()
	id := func(addr string) string {
		s, err := testkit.Do(t, c.NodeClient(t, addr), "CLUSTER", "MYID").ToString()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, fromID, toID := strconv.Itoa(slot), id(from), id(to)
	testkit.Do(t, c.NodeClient(t, to), "CLUSTER", "SETSLOT", s, "IMPORTING", fromID)
	testkit.Do(t, c.NodeClient(t, from), "CLUSTER", "SETSLOT", s, "MIGRATING", toID)
	keys, _ := testkit.Do(t, c.NodeClient(t, from), "CLUSTER", "GETKEYSINSLOT", s, "1000").AsStrSlice()
	host, port, _ := strings.Cut(to, ":")
	testkit.Do(t, c.NodeClient(t, from), append([]string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}, keys...)...)
	during()
	for _, addr := range append([]string{to, from}, c.Masters(t)...) {
		testkit.Do(t, c.NodeClient(t, addr), "CLUSTER", "SETSLOT", s, "NODE", toID)
	}
	c.WaitOK(t)
}

// expectKeyEvent waits for frame n (1-based) of a key watch and checks its
// name and that its data holds want.
func expectKeyEvent(t *testing.T, r *testkit.Recorder, n int, name, want string) {
	t.Helper()
	f := r.Wait(t, n)[n-1]
	if ev, data := testkit.Field(f.Bytes, "event"), testkit.Field(f.Bytes, "data"); ev != name || !strings.Contains(data, want) {
		t.Fatalf("frame %d: %s %s, want %s with %s (all: %v)", n, ev, data, name, want, testkit.EventNames(r.Wait(t, r.Count())))
	}
}

func checkEntries(t *testing.T, fs []*streams.Frame, from, to int) {
	t.Helper()
	if len(fs) != to-from {
		t.Fatalf("%d entries, want %d", len(fs), to-from)
	}
	for i, f := range fs {
		if want := fmt.Sprintf(`{"n":"%d"}`, from+i); testkit.Field(f.Bytes, "data") != want {
			t.Fatalf("entry %d: %s, want %s", from+i, f.Bytes, want)
		}
	}
}

func frameData(fs []*streams.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, testkit.Field(f.Bytes, "data"))
	}
	return out
}

// ownerOf is the master that owns key's slot now: the one that answers
// for it instead of redirecting.
func ownerOf(t *testing.T, c *testkit.Cluster, key string) string {
	t.Helper()
	for _, m := range c.Masters(t) {
		nc := c.NodeClient(t, m)
		if err := nc.Do(context.Background(), nc.B().Exists().Key(key).Build()).Error(); err == nil {
			return m
		}
	}
	t.Fatalf("no master owns %q", key)
	return ""
}

func otherMaster(t *testing.T, c *testkit.Cluster, not string) string {
	t.Helper()
	for _, m := range c.Masters(t) {
		if m != not {
			return m
		}
	}
	t.Fatal("no other master")
	return ""
}

// subscribers sums PUBSUB <sub> channel over every live node.
func subscribers(t *testing.T, c *testkit.Cluster, sub, channel string) int64 {
	t.Helper()
	var total int64
	for _, addr := range append(c.Masters(t), c.Replicas(t)...) {
		arr, err := testkit.Do(t, c.NodeClient(t, addr), "PUBSUB", sub, channel).ToArray()
		if err != nil || len(arr) != 2 {
			t.Fatalf("PUBSUB %s on %s: %v", sub, addr, err)
		}
		n, _ := arr[1].AsInt64()
		total += n
	}
	return total
}

func numsub(t *testing.T, c *testkit.Cluster, addr, channel string) int64 {
	t.Helper()
	arr, err := testkit.Do(t, c.NodeClient(t, addr), "PUBSUB", "NUMSUB", channel).ToArray()
	if err != nil || len(arr) != 2 {
		t.Fatalf("PUBSUB NUMSUB on %s: %v", addr, err)
	}
	n, _ := arr[1].AsInt64()
	return n
}

func shardSubscribers(t *testing.T, c *testkit.Cluster, addr, channel string) int64 {
	t.Helper()
	arr, err := testkit.Do(t, c.NodeClient(t, addr), "PUBSUB", "SHARDNUMSUB", channel).ToArray()
	if err != nil || len(arr) != 2 {
		t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v", addr, err)
	}
	n, _ := arr[1].AsInt64()
	return n
}
