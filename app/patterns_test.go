package main

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// TestRedisPatternsBounded is finding 3 of issue 10, scaled down: clients
// open streams with ever new patterns, wait for "connected" and leave, at
// most two open at once, leaving lingering topics behind. Redis must never
// hold more than --max-redis-patterns patterns, and every stream must still
// get exactly the events its own pattern matches.
func TestRedisPatternsBounded(t *testing.T) {
	const budget, churn = 4, 200
	k := startKeyflux(t, keyspaceFlags, "--max-redis-patterns", fmt.Sprint(budget),
		"--stream-rate-per-ip", "100000", "--stream-burst-per-ip", "100000")

	// Poll NUMPAT on a connection of its own while the clients churn.
	watcher := testkit.NewClient(t, k.redis)
	var peak atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(time.Millisecond) // Redis's count has no event to await
		defer tick.Stop()
		for ctx.Err() == nil {
			if n, err := watcher.Do(ctx, watcher.B().Arbitrary("PUBSUB", "NUMPAT").Build()).AsInt64(); err == nil && n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}()
	defer func() { cancel(); <-polled }()

	// Each pattern, a key it does not match (sent first) and one it does:
	// the first event a stream gets must be the second.
	shapes := []func(i int) (pattern, miss, hit string){
		func(i int) (string, string, string) {
			return fmt.Sprintf("c%d:*", i), fmt.Sprintf("c%d", i), fmt.Sprintf("c%d:z", i)
		},
		func(i int) (string, string, string) {
			return fmt.Sprintf("c%d:[ab]", i), fmt.Sprintf("c%d:c", i), fmt.Sprintf("c%d:a", i)
		},
		func(i int) (string, string, string) {
			return fmt.Sprintf("c%d?x", i), fmt.Sprintf("c%d:xy", i), fmt.Sprintf("c%d:x", i)
		},
		func(i int) (string, string, string) {
			return fmt.Sprintf(`c%d\*[^0-9]`, i), fmt.Sprintf("c%d*1", i), fmt.Sprintf("c%d*k", i)
		},
	}
	var watch *testkit.Stream // a second stream, open through the second half
	for i := range churn {
		pattern, miss, hit := shapes[i%len(shapes)](i)
		s := k.open("/streams/keyspace?pattern=" + url.QueryEscape(pattern))
		s.Expect("connected")
		k.do("SET", miss, "v")
		k.do("SET", hit, "v")
		if got := testkit.Data(t, s.Expect("set"))["key"]; got != hit {
			t.Fatalf("stream %d (%q) got key %v first, want %q", i, pattern, got, hit)
		}
		s.Close()
		if i == churn/2 {
			watch = k.open("/streams/keyspace?pattern=" + url.QueryEscape("w:[0-9]"))
			watch.Expect("connected")
		}
	}
	for _, key := range []string{"w:x", "w:1", "w:10", "w:", "w:2"} {
		k.do("SET", key, "v")
	}
	for _, want := range []string{"w:1", "w:2"} {
		if got := testkit.Data(t, watch.Expect("set"))["key"]; got != want {
			t.Fatalf("covered stream got %v, want %s", got, want)
		}
	}
	if n := k.srv.hub.Topics(); n < churn/2 {
		t.Fatalf("%d topics: the closed streams should linger", n)
	}
	if n := k.numpat(); n > budget || peak.Load() > budget {
		t.Fatalf("Redis holds %d patterns, %d at the peak; --max-redis-patterns is %d", n, peak.Load(), budget)
	}
	t.Logf("%d streams opened and closed, %d lingering topics; PUBSUB NUMPAT peaked at %d", churn, k.srv.hub.Topics(), peak.Load())
}
