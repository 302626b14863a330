package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// watchNumpat polls PUBSUB NUMPAT, on a client of its own, until the test
// ends and returns the highest value seen so far.
func watchNumpat(t *testing.T, c rueidis.Client) func() int64 {
	var peak atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond) // a count with no event to await
		defer tick.Stop()
		for ctx.Err() == nil {
			n, err := c.Do(ctx, c.B().Arbitrary("PUBSUB", "NUMPAT").Build()).AsInt64()
			if err == nil && n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return peak.Load
}

// keysOf is the keys of the keyspace events among frames, in order.
func keysOf(t *testing.T, frames []*streams.Frame) []string {
	t.Helper()
	var keys []string
	for _, f := range frames {
		if testkit.Field(f.Bytes, "event") != "set" {
			continue
		}
		var ev streams.KeyspaceEvent
		if err := json.Unmarshal([]byte(testkit.Field(f.Bytes, "data")), &ev); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ev.Key)
	}
	return keys
}

// TestPatternsBoundedByCovers opens more distinct keyspace and channel
// patterns than MaxPatterns allows, all at once: Redis never holds more than
// the budget, yet every stream gets exactly the events its own pattern
// matches, and a reconnect's reset, and nothing is left when they leave.
func TestPatternsBoundedByCovers(t *testing.T) {
	const budget = 4
	srv, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	peak := watchNumpat(t, testkit.NewClient(t, srv))
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	// Keyflux's own client, apart from the test's, so that CLIENT KILL can
	// cut its subscriptions (Redis spares the connection that asks).
	ups := &Upstreams{Client: testkit.NewClient(t, srv), MaxPatterns: budget}
	ks := &Keyspace{Upstreams: ups}
	chans := &Channels{Upstreams: ups}

	// Stream i watches the keys of group i, each in its own way; every key
	// belongs to one group, so each stream's events are known in advance.
	const groups = 12
	var (
		recs []*testkit.Recorder
		subs []*streams.Subscription
		want [][]string
	)
	for i := range groups {
		var pattern string
		switch i % 4 {
		case 0:
			pattern = fmt.Sprintf("g%d:*", i)
		case 1:
			pattern = fmt.Sprintf("g%d:[ab]?", i) // g1:a1, not g1:c1 or g1:a
		case 2:
			pattern = fmt.Sprintf("g%d:[^a]*", i)
		case 3:
			pattern = fmt.Sprintf(`g%d:\*?`, i) // a literal star, then one byte
		}
		r := testkit.NewRecorder()
		s, err := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: pattern}), r, "")
		if err != nil {
			t.Fatal(err)
		}
		r.Wait(t, 1) // connected
		recs, subs = append(recs, r), append(subs, s)
	}
	for i := range groups {
		keys := []string{fmt.Sprintf("g%d:a1", i), fmt.Sprintf("g%d:c1", i), fmt.Sprintf("g%d:a", i),
			fmt.Sprintf("g%d:*x", i), fmt.Sprintf("g%d", i)}
		var w []string
		for _, k := range keys {
			testkit.Do(t, c, "SET", k, "v")
			var ok bool
			switch i % 4 {
			case 0:
				ok = k != fmt.Sprintf("g%d", i)
			case 1:
				ok = k == fmt.Sprintf("g%d:a1", i)
			case 2:
				ok = k == fmt.Sprintf("g%d:c1", i) || k == fmt.Sprintf("g%d:*x", i)
			case 3:
				ok = k == fmt.Sprintf("g%d:*x", i)
			}
			if ok {
				w = append(w, k)
			}
		}
		want = append(want, w)
	}
	// A channel pattern covered too, which must not see keyspace events.
	news := testkit.NewRecorder()
	ns, _ := h.Subscribe(chans.Stream(streams.ChannelQuery{Name: "news.[ab]*", Pattern: true}), news, "")
	news.Wait(t, 1)
	for _, ch := range []string{"news.a1", "news.c1", "news.b", "other"} {
		testkit.Do(t, c, "PUBLISH", ch, ch)
	}
	// A marker per group, so that waiting for it proves nothing else came.
	for i := range groups {
		marker := fmt.Sprintf("g%d:b1", i)
		if i%4 == 2 {
			marker = fmt.Sprintf("g%d:bb", i)
		}
		if i%4 == 3 {
			marker = fmt.Sprintf("g%d:*m", i)
		}
		testkit.Do(t, c, "SET", marker, "v")
		want[i] = append(want[i], marker)
	}
	testkit.Do(t, c, "PUBLISH", "news.bend", "end")
	for i, r := range recs {
		got := keysOf(t, r.Wait(t, 1+len(want[i])))
		if !slices.Equal(got, want[i]) {
			t.Errorf("stream %d got keys %q, want %q", i, got, want[i])
		}
	}
	if got := testkit.EventNames(news.Wait(t, 4)); fmt.Sprint(got) != "[connected message message message]" {
		t.Errorf("channel pattern got %v", got)
	} else if data := testkit.Field(news.Wait(t, 4)[3].Bytes, "data"); data != "end" {
		t.Errorf("channel pattern's third message %q, want the marker (news.c1 and other are not its own)", data)
	}
	if n := ups.Patterns(); n > budget || n < 2 {
		t.Fatalf("%d patterns held; want covers within the budget of %d", n, budget)
	}

	// A reconnect resubscribes every pattern; covered streams hear it too.
	testkit.Do(t, c, "CLIENT", "KILL", "TYPE", "pubsub")
	for i, r := range recs {
		frames := r.Wait(t, 2+len(want[i]))
		if name := testkit.Field(frames[len(frames)-1].Bytes, "event"); name != "reset" {
			t.Errorf("stream %d after a reconnect got %q, want reset", i, name)
		}
	}

	for _, s := range append(subs, ns) {
		s.Close()
	}
	testkit.Eventually(t, "every pattern released", func() bool {
		n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64()
		return n == 0 && ups.Patterns() == 0 && ups.Live() == 0
	})
	if p := peak(); p > budget {
		t.Fatalf("Redis held %d patterns at once; the budget is %d", p, budget)
	}
}

// TestCoverRunsTheJoinersResync: a keyspace stream that joins "*", opened
// by a channel pattern with no resync of its own, restores the keyspace
// flags before it says connected.
func TestCoverRunsTheJoinersResync(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "")
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	ups := &Upstreams{Client: c, MaxPatterns: 1} // "*" only
	chanRec, ksRec := testkit.NewRecorder(), testkit.NewRecorder()
	s1, _ := h.Subscribe((&Channels{Upstreams: ups}).Stream(streams.ChannelQuery{Name: "news.*", Pattern: true}), chanRec, "")
	defer s1.Close()
	chanRec.Wait(t, 1)
	if n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64(); n != 1 || ups.Live() != 1 {
		t.Fatalf("NUMPAT %d, upstreams %d; want the one cover", n, ups.Live())
	}
	ks := &Keyspace{Upstreams: ups, Notify: &NotifyConfig{Client: c, Mode: NotifyAuto}}
	s2, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "k*"}), ksRec, "")
	defer s2.Close()
	ksRec.Wait(t, 1)
	testkit.Do(t, c, "SET", "other", "v")
	testkit.Do(t, c, "SET", "k1", "v")
	if keys := keysOf(t, ksRec.Wait(t, 2)); fmt.Sprint(keys) != "[k1]" {
		t.Fatalf("keyspace stream on the cover got %v", keys)
	}
	if n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64(); n != 1 {
		t.Fatalf("NUMPAT %d, want 1", n)
	}
}
