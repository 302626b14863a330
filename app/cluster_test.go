package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// startKeyfluxCluster starts Keyflux on a Redis Cluster (--redis-url
// naming every node) and stops it when the test ends.
func startKeyfluxCluster(t testing.TB, cl *testkit.Cluster, flags ...string) *keyflux {
	t.Helper()
	return launch(t, cl.URL(), cl.Client(t), flags...)
}

// Keyflux on a Redis Cluster: found by itself, one keyspace stream over
// every master, one database, a ready cluster, per-node gauges; and the
// --redis-cluster settings that contradict the Redis refuse to start.
func TestClusterKeyflux(t *testing.T) {
	cl := testkit.StartCluster(t, 3, 1)
	k := startKeyfluxCluster(t, cl, "--linger", "0s", "--redis-topology-check", "200ms")
	logs := k.logs.String()
	if !strings.Contains(logs, "using Redis Cluster") || !strings.Contains(logs, "masters=3") ||
		!strings.Contains(logs, "slots_covered=16384") {
		t.Fatalf("topology not logged:\n%s", logs)
	}

	s := k.open("/streams/keyspace?pattern=cl:*")
	s.Expect("connected")
	masters := cl.Masters(t)
	for _, m := range masters {
		key := cl.KeyOn(t, m, "cl:")
		k.do("SET", key, "v")
		d := testkit.Data(t, s.Expect("set"))
		if d["key"] != key || d["node"] != m || d["db"] != float64(0) {
			t.Fatalf("event %v, want %s from %s", d, key, m)
		}
	}

	if status, body := k.get("/streams/keyspace?pattern=cl:*&db=1"); status != 400 ||
		!strings.Contains(body["error"].(string), "database 0 only") {
		t.Fatalf("db=1 on a cluster: %d %v", status, body)
	}
	if status, body := k.get("/readyz"); status != 200 {
		t.Fatalf("readyz %d %v", status, body)
	}
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range masters {
		if line := `keyflux_redis_node_subscriptions{node="` + m + `",role="master"} 1`; !strings.Contains(string(metrics), line) {
			t.Fatalf("metrics lack %s:\n%s", line, metrics)
		}
	}
	for _, r := range cl.Replicas(t) {
		if line := `keyflux_redis_node_subscriptions{node="` + r + `",role="replica"} 0`; !strings.Contains(string(metrics), line) {
			t.Fatalf("metrics lack %s", line)
		}
	}
	s.Close()
	for _, m := range masters {
		node := cl.NodeClient(t, m)
		testkit.Eventually(t, "NUMPAT 0 on "+m, func() bool {
			n, _ := testkit.Do(t, node, "PUBSUB", "NUMPAT").AsInt64()
			return n == 0
		})
	}

	// --redis-cluster false on a cluster, true on a single Redis: refused.
	for _, c := range []struct{ url, mode, want string }{
		{cl.URL(), "false", "is a Redis Cluster node"},
		{testkit.StartRedis(t).URL(), "true", "is not a Redis Cluster node"},
		{cl.URL() + "&addr=x", "bogus", "want auto, true or false"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := run(ctx, []string{"--listen", "127.0.0.1:0", "--redis-url", c.url, "--redis-cluster", c.mode}, io.Discard, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("--redis-cluster %s: %v, want %q", c.mode, err, c.want)
		}
	}
}
