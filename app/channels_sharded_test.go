package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// Sharded pub/sub on a single Redis 7: SSUBSCRIBE and SPUBLISH work without
// a cluster. A sharded and an ordinary stream of one channel are two topics
// with two Redis subscriptions, and neither sees the other's messages.
func TestChannelShardedSingleNode(t *testing.T) {
	const token = "t0ken"
	k := startKeyflux(t, nil, "--linger", "50ms", "--publish-token", token)
	sh := k.open("/streams/channels/news.eu?sharded=true")
	plain := k.open("/streams/channels/news.eu")
	if d := testkit.Data(t, sh.Expect("connected")); d["sharded"] != true || d["channel"] != "news.eu" {
		t.Fatalf("sharded connected %v", d)
	}
	if d := testkit.Data(t, plain.Expect("connected")); d["sharded"] != nil {
		t.Fatalf("ordinary connected %v", d)
	}
	if n := k.shardnumsub("news.eu"); n != 1 || k.numsub("news.eu") != 1 || k.srv.hub.Topics() != 2 {
		t.Fatalf("SHARDNUMSUB %d, NUMSUB %d, topics %d", n, k.numsub("news.eu"), k.srv.hub.Topics())
	}

	k.do("SPUBLISH", "news.eu", "s1")
	k.do("PUBLISH", "news.eu", "p1")
	status, _, body := k.post("/api/channels/news.eu?sharded=true", token, `{"n":2}`)
	if status != 200 || body["receivers"] != float64(1) {
		t.Fatalf("sharded publish: %d %v", status, body)
	}
	status, _, body = k.post("/api/channels/news.eu?sharded=false", token, `{"n":3}`)
	if status != 200 || body["receivers"] != float64(1) {
		t.Fatalf("ordinary publish: %d %v", status, body)
	}
	// Each stream gets its own two, in order, and nothing of the other's.
	if got := sh.Expect("message").Data + "," + sh.Expect("message").Data; got != `s1,{"n":2}` {
		t.Fatalf("sharded stream got %q", got)
	}
	if got := plain.Expect("message").Data + "," + plain.Expect("message").Data; got != `p1,{"n":3}` {
		t.Fatalf("ordinary stream got %q", got)
	}
	k.do("SPUBLISH", "news.eu", "end")
	if got := sh.Expect("message").Data; got != "end" {
		t.Fatalf("sharded stream got %q after its messages", got)
	}

	// A combined stream's sub takes the same query.
	comb := k.open(combinedPath("s:channels/news.eu?sharded=true", "p:channels/news.eu"))
	comb.Expect("connected")
	comb.Expect("connected")
	k.do("SPUBLISH", "news.eu", "to-s")
	k.do("PUBLISH", "news.eu", "to-p")
	got := map[string]bool{} // two topics: their order is not fixed
	for range 2 {
		d := testkit.Data(t, comb.Expect("message"))
		got[fmt.Sprint(d["sub"], " ", d["data"])] = true
	}
	if !got["s to-s"] || !got["p to-p"] {
		t.Fatalf("combined got %v", got)
	}
	comb.Close()
	sh.Close()
	plain.Close()
	testkit.Eventually(t, "subscriptions released", func() bool {
		return k.shardnumsub("news.eu") == 0 && k.numsub("news.eu") == 0 && k.srv.hub.Topics() == 0
	})
}

func TestChannelShardedBadInput(t *testing.T) {
	const token = "t0ken"
	k := startKeyflux(t, nil, "--publish-token", token, "--expose-channels", "news.")
	for _, c := range []struct {
		path  string
		error string
	}{
		{"/streams/channels?pattern=news.*&sharded=true", "no patterns"},
		{"/streams/channels/news.a?sharded=maybe", "true or false"},
		{"/streams/channels/news.a?sharded=true&sharded=true", "more than once"},
	} {
		status, body := k.get(c.path)
		if msg, _ := body["error"].(string); status != 400 || !strings.Contains(msg, c.error) {
			t.Errorf("%s: %d %v, want 400 with %q", c.path, status, body, c.error)
		}
	}
	spy := k.open("/streams/channels/news.a?sharded=true")
	spy.Expect("connected")
	for _, q := range []string{"?sharded=yes", "?sharded=1&sharded=0"} {
		if status, _, body := k.post("/api/channels/news.a"+q, token, `{"a":1}`); status != 400 {
			t.Errorf("POST %s: %d %v", q, status, body)
		}
	}
	// A pattern stream asking for sharded=false is an ordinary one.
	p := k.open("/streams/channels?pattern=news.*&sharded=false")
	p.Expect("connected")
	// Nothing was published by the refused requests: the first message the
	// sharded spy sees is this one.
	k.do("SPUBLISH", "news.a", "only")
	if got := spy.Expect("message").Data; got != "only" {
		t.Fatalf("a refused publish reached the channel: %q", got)
	}
}

func (k *keyflux) shardnumsub(channel string) int64 {
	arr, err := k.do("PUBSUB", "SHARDNUMSUB", channel).ToArray()
	if err != nil || len(arr) != 2 {
		k.t.Fatalf("PUBSUB SHARDNUMSUB: %v", err)
	}
	n, _ := arr[1].AsInt64()
	return n
}
