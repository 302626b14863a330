package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// Channels, Redis Streams and key watches through Keyflux on a Redis
// Cluster, on one cluster: ordinary pub/sub once whatever node publishes,
// sharded pub/sub following its slot, a stream log resuming exactly after
// its key moved, key watches on every master.
func TestClusterChannelsLogsAndKeys(t *testing.T) {
	const token = "t0ken"
	cl := testkit.StartCluster(t, 3, 0)
	k := startKeyfluxCluster(t, cl, "--linger", "0s", "--publish-token", token, "--redis-topology-check", "200ms")
	masters := cl.Masters(t)
	node := func(addr string, args ...string) { testkit.Do(t, cl.NodeClient(t, addr), args...) }

	// Ordinary pub/sub: a PUBLISH on any node reaches the stream once.
	plain := k.open("/streams/channels/news")
	plain.Expect("connected")
	for i, m := range masters {
		node(m, "PUBLISH", "news", "m"+strconv.Itoa(i))
		if got := plain.Expect("message").Data; got != "m"+strconv.Itoa(i) {
			t.Fatalf("got %q from %s", got, m)
		}
	}

	// Sharded pub/sub: published through the API, relayed, and followed
	// to the slot's new owner with a reset, since messages may be lost.
	sh := k.open("/streams/channels/orders?sharded=true")
	if d := testkit.Data(t, sh.Expect("connected")); d["sharded"] != true {
		t.Fatalf("connected %v", d)
	}
	publish := func(body string) {
		t.Helper()
		status, _, resp := k.post("/api/channels/orders?sharded=true", token, body)
		if status != 200 || resp["receivers"] != float64(1) {
			t.Fatalf("sharded publish: %d %v", status, resp)
		}
	}
	publish(`{"n":1}`)
	if got := sh.Expect("message").Data; got != `{"n":1}` {
		t.Fatalf("sharded got %q", got)
	}
	slot := testkit.KeySlot("orders")
	from := ownerIn(t, cl, masters, "orders")
	cl.MoveSlot(t, slot, otherThan(masters, from))
	if d := testkit.Data(t, sh.Expect("reset")); d["reason"] != "upstream-gap" {
		t.Fatalf("reset %v", d)
	}
	publish(`{"n":2}`)
	if got := sh.Expect("message").Data; got != `{"n":2}` {
		t.Fatalf("sharded got %q after the move", got)
	}

	// A Redis Stream whose slot moves between two entries: the stream and a
	// client resuming from the first entry see every entry once.
	key := cl.KeyOn(t, masters[0], "log:")
	lg := k.open("/streams/log/" + key)
	lg.Expect("connected")
	appendEntry := func(n int) {
		t.Helper()
		if status, _, resp := k.post("/api/log/"+key, token, fmt.Sprintf(`{"n":%d}`, n)); status != 201 {
			t.Fatalf("append: %d %v", status, resp)
		}
	}
	appendEntry(1)
	first := lg.Expect("entry")
	cl.MoveSlot(t, testkit.KeySlot(key), masters[1])
	appendEntry(2)
	appendEntry(3)
	if got := lg.Expect("entry").Data + lg.Expect("entry").Data; got != `{"n":"2"}{"n":"3"}` {
		t.Fatalf("log got %q", got)
	}
	resumed := k.open("/streams/log/"+key, "Last-Event-ID", first.LastEventID)
	resumed.Expect("connected")
	if got := resumed.Expect("entry").Data + resumed.Expect("entry").Data; got != `{"n":"2"}{"n":"3"}` {
		t.Fatalf("resumed log got %q", got)
	}

	// Key watches on a key of every master.
	var keys []string
	for i, m := range masters {
		key := cl.KeyOn(t, m, "w:")
		keys = append(keys, "key="+key)
		k.do("SET", key, "v"+strconv.Itoa(i))
	}
	w := k.open("/streams/keys?" + strings.Join(keys, "&"))
	w.Expect("connected")
	snaps := map[string]string{}
	for range masters {
		st := keyState(t, w.Expect("snapshot"))
		snaps[st.Key] = string(st.Value)
	}
	for i, kv := range keys {
		key := strings.TrimPrefix(kv, "key=")
		if snaps[key] != `"v`+strconv.Itoa(i)+`"` {
			t.Fatalf("snapshots %v", snaps)
		}
		k.do("SET", key, "x")
		if st := keyState(t, w.Expect("update")); st.Key != key || string(st.Value) != `"x"` {
			t.Fatalf("update %+v", st)
		}
		k.do("DEL", key)
		// The reason comes from the key's own master's keyspace channel.
		if d := testkit.Data(t, w.Expect("delete")); d["key"] != key || d["reason"] != "del" {
			t.Fatalf("delete %v", d)
		}
	}
}

// ownerIn is the master among masters that serves key now.
func ownerIn(t *testing.T, cl *testkit.Cluster, masters []string, key string) string {
	t.Helper()
	for _, m := range masters {
		c := cl.NodeClient(t, m)
		if c.Do(t.Context(), c.B().Exists().Key(key).Build()).Error() == nil {
			return m
		}
	}
	t.Fatalf("no master serves %q", key)
	return ""
}

func otherThan(all []string, not string) string {
	for _, a := range all {
		if a != not {
			return a
		}
	}
	return ""
}
