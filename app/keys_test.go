package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
	"go.uber.org/goleak"
)

func TestKeysSnapshotUpdateDelete(t *testing.T) {
	k := startKeyflux(t, nil)
	k.do("SET", "order:42", "pending")
	s := k.open("/streams/keys?key=order:42&key=order:43&key=order:42")
	c := s.Expect("connected")
	if c.LastEventID == "" {
		t.Fatal("connected has no id")
	}
	if d := testkit.Data(t, c); fmt.Sprint(d["keys"]) != "[order:42 order:43]" || d["stream"] != "keys" {
		t.Fatalf("connected %v: want the keys once each, in order", d)
	}
	snaps := snapshots(t, s, 2)
	if got := snaps["order:42"]; !got.Exists || got.Type != "string" || string(got.Value) != `"pending"` || got.TTLms != -1 {
		t.Fatalf("snapshot %+v", got)
	}
	if got := snaps["order:43"]; got.Exists || got.Type != "none" || string(got.Value) != "null" || got.TTLms != -2 {
		t.Fatalf("snapshot of a missing key %+v", got)
	}

	k.do("SET", "order:42", "paid", "EX", "100")
	d := expectKey(t, s, "update", "order:42")
	if d["value"] != "paid" || d["exists"] != true || d["ttl_ms"].(float64) <= 90000 || d["ttl_ms"].(float64) > 100000 {
		t.Fatalf("update %v", d)
	}
	k.do("HSET", "order:43", "total", "9.50")
	if d := expectKey(t, s, "update", "order:43"); d["type"] != "hash" || fmt.Sprint(d["value"]) != "map[total:9.50]" {
		t.Fatalf("update %v", d)
	}

	// Every way a key goes away, and the reason each one is given.
	for _, c := range []struct {
		name   string
		create []string
		remove func()
		reason string
	}{
		{"del", []string{"SET", "order:42", "x"}, func() { k.do("DEL", "order:42") }, "del"},
		{"unlink", []string{"SET", "order:42", "x"}, func() { k.do("UNLINK", "order:42") }, "del"},
		{"emptied", []string{"RPUSH", "order:42", "a"}, func() { k.do("LPOP", "order:42") }, "del"},
		{"getdel", []string{"SET", "order:42", "x"}, func() { k.do("GETDEL", "order:42") }, "del"},
		{"expired", []string{"SET", "order:42", "x", "PX", "30"}, func() {}, "expired"},
		{"renamed", []string{"SET", "order:42", "x"}, func() { k.do("RENAME", "order:42", "order:99") }, "renamed"},
		{"moved", []string{"SET", "order:42", "x"}, func() { k.do("MOVE", "order:42", "5") }, "moved"},
		{"evicted", []string{"SET", "order:42", "x", "EX", "1000"}, func() {
			// Only order:42 has a TTL, so volatile-ttl can evict nothing else.
			k.do("CONFIG", "SET", "maxmemory-policy", "volatile-ttl")
			k.do("CONFIG", "SET", "maxmemory", "1")
			k.rc.Do(context.Background(), k.rc.B().Set().Key("filler").Value("x").Build()) // may be refused: OOM
			k.do("CONFIG", "SET", "maxmemory", "0")
		}, "evicted"},
	} {
		k.do(c.create...)
		expectKey(t, s, "update", "order:42")
		c.remove()
		if d := expectKey(t, s, "delete", "order:42"); d["reason"] != c.reason || len(d) != 2 {
			t.Fatalf("%s: delete %v, want reason %s\n%s", c.name, d, c.reason, k.logs)
		}
	}
	// A write that leaves a missing key missing says nothing.
	k.do("DEL", "order:42")
	k.do("SET", "order:42", "back")
	if d := expectKey(t, s, "update", "order:42"); d["value"] != "back" {
		t.Fatalf("after a no-op delete: %v", d)
	}
}

func TestKeysValueTypesRoundTrip(t *testing.T) {
	k := startKeyflux(t, nil, "--value-max-bytes", "200")
	bin := "\x00\xff\xfe binary\r\n"
	b64 := map[string]any{"base64": base64.StdEncoding.EncodeToString([]byte(bin))}
	k.do("SET", "v:text", "héllo\nworld\r\nevent: x\n\ndata: y")
	k.do("SET", "v:bin", bin)
	k.do("SET", "v:empty", "")
	k.do("HSET", "v:hash", "name", "ada\nlovelace", "blob", bin)
	k.do("HSET", "v:binfield", "\xff", "x", "ok", "y")
	k.do("RPUSH", "v:list", "b", "a", "b", bin)
	k.do("SADD", "v:set", "z", "a", "m")
	k.do("ZADD", "v:zset", "1.5", "one", "-inf", "low", "+inf", "high", "2", bin)
	k.do("XADD", "v:stream", "1-1", "f", "v")
	k.do("XADD", "v:stream", "5-0", "f", "v")
	k.do("SET", "v:big", strings.Repeat("x", 300))
	k.do("RPUSH", "v:biglist", strings.Repeat("y", 150), strings.Repeat("z", 150))

	want := map[string]struct {
		typ   string
		value any
	}{
		"v:text":     {"string", "héllo\nworld\r\nevent: x\n\ndata: y"},
		"v:bin":      {"string", b64},
		"v:empty":    {"string", ""},
		"v:hash":     {"hash", map[string]any{"name": "ada\nlovelace", "blob": b64}},
		"v:binfield": {"hash", []any{[]any{"ok", "y"}, []any{map[string]any{"base64": "/w=="}, "x"}}},
		"v:list":     {"list", []any{"b", "a", "b", b64}},
		"v:set":      {"set", []any{"a", "m", "z"}},
		"v:zset":     {"zset", []any{[]any{"low", "-inf"}, []any{"one", 1.5}, []any{b64, 2.0}, []any{"high", "inf"}}},
		"v:stream":   {"stream", map[string]any{"length": 2.0, "last_id": "5-0"}},
		"v:big":      {"string", map[string]any{"truncated": true, "size": 302.0}},
		"v:biglist":  {"list", map[string]any{"truncated": true, "size": 307.0}},
	}
	q := url.Values{}
	for key := range want {
		q.Add("key", key)
	}
	s := k.open("/streams/keys?" + q.Encode())
	s.Expect("connected")
	check := func(how string, st map[string]any) {
		t.Helper()
		key := st["key"].(string)
		w := want[key]
		if st["type"] != w.typ || st["exists"] != true || !reflect.DeepEqual(st["value"], w.value) {
			t.Errorf("%s %s: type %v value %#v, want %s %#v", how, key, st["type"], st["value"], w.typ, w.value)
		}
	}
	for range want {
		check("snapshot", testkit.Data(t, s.Expect("snapshot")))
	}
	for key := range want {
		status, body := k.get("/api/keys/" + url.PathEscape(key))
		if status != 200 {
			t.Fatalf("GET /api/keys/%s: %d %v", key, status, body)
		}
		check("api", body)
	}
	// And as updates: the bytes written again after a change come back the same.
	for _, key := range []string{"v:bin", "v:text"} {
		v, _ := k.do("GET", key).ToString()
		k.do("SET", key, "changed")
		if d := expectKey(t, s, "update", key); d["value"] != "changed" {
			t.Fatalf("update %v", d)
		}
		k.do("SET", key, v)
		check("update", testkit.Data(t, s.Expect("update")))
	}
	// A write that changes nothing sends nothing.
	k.do("SET", "v:empty", "")
	k.do("SET", "v:empty", "now")
	if d := expectKey(t, s, "update", "v:empty"); d["value"] != "now" {
		t.Fatalf("after a write of the same value: %v", d)
	}
}

// TestKeysThousandWatchersOneReadPerChange: a burst of changes is read once
// per invalidation that finds a read due (coalesced: watchers get the
// latest value, never an older one after a newer); changes slower than a
// read reach every watcher one by one, in order. Either way Redis serves at
// most one read per change, however many watch.
func TestKeysThousandWatchersOneReadPerChange(t *testing.T) {
	const (
		httpClients = 100
		hubClients  = 900
		changes     = 100
	)
	k := startKeyflux(t, nil, "--queue-bytes", "4194304")
	k.do("SET", "hot", "v0")
	var clients []*testkit.Stream
	for range httpClients {
		s := k.open("/streams/keys?key=hot")
		s.Expect("connected")
		if v := expectKey(t, s, "snapshot", "hot")["value"]; v != "v0" {
			t.Fatalf("snapshot %v", v)
		}
		clients = append(clients, s)
	}
	var counters []*counter
	for range hubClients {
		c := &counter{}
		sub, err := k.srv.hub.Subscribe(k.srv.redis.KeyWatches.Stream("hot"), c, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		counters = append(counters, c)
	}
	if n := k.srv.hub.Topics(); n != 1 {
		t.Fatalf("%d topics for one key", n)
	}
	// next reads an HTTP client's updates up to value n, checking the order;
	// it returns how many it got.
	next := func(s *testkit.Stream, from, to int) int {
		t.Helper()
		got := 0
		for last := from; last < to; got++ {
			v := expectKey(t, s, "update", "hot")["value"].(string)
			var n int
			fmt.Sscanf(v, "v%d", &n)
			if n <= last {
				t.Fatalf("got %s after v%d: out of order", v, last)
			}
			last = n
		}
		return got
	}
	allReach := func(to int) int {
		t.Helper()
		received := 0
		for _, s := range clients[1:] {
			received += next(s, 0, to)
		}
		for i, c := range counters {
			testkit.Eventually(t, fmt.Sprint("hub client ", i, " reaching v", to), func() bool {
				n, _, err := c.state()
				if err != "" {
					t.Fatal(err)
				}
				return n == to
			})
		}
		return received
	}

	for _, phase := range []string{"burst", "paced"} {
		gets, types := k.cmdCalls("get"), k.cmdCalls("type")
		base := 0
		if phase == "paced" {
			base = changes
		}
		for _, c := range counters {
			c.reset()
		}
		for i := base + 1; i <= base+changes; i++ {
			k.do("SET", "hot", fmt.Sprint("v", i))
			if phase == "paced" { // the next change waits until a watcher has this one
				next(clients[0], i-1, i)
			}
		}
		if phase == "burst" {
			next(clients[0], 0, changes)
		}
		received := allReach(base + changes)
		g, ty := k.cmdCalls("get")-gets, k.cmdCalls("type")-types
		t.Logf("%s: %d changes, %d watchers: Redis ran GET %d and TYPE %d times; HTTP clients got %.1f updates each",
			phase, changes, httpClients+hubClients, g, ty, float64(received)/(httpClients-1))
		if g > changes || ty > changes {
			t.Fatalf("%s: Redis served %d GETs and %d TYPEs for %d changes: more than one read per change", phase, g, ty, changes)
		}
		if phase == "paced" {
			if received != (httpClients-1)*changes {
				t.Fatalf("paced: HTTP clients got %d updates, want all %d each", received, changes)
			}
			for _, c := range counters {
				if _, seen, _ := c.state(); seen != changes {
					t.Fatalf("paced: a hub client saw %d of the %d values", seen, changes)
				}
			}
		}
	}
}

func TestKeysHealAfterConnectionLoss(t *testing.T) {
	k := startKeyflux(t, nil)
	k.do("SET", "c:1", "a")
	k.do("HSET", "c:2", "f", "1")
	var clients []*testkit.Stream
	for range 3 {
		s := k.open("/streams/keys?key=c:1&key=c:2")
		s.Expect("connected")
		snapshots(t, s, 2)
		clients = append(clients, s)
	}

	// The caching connection is killed: rueidis flushes its cache, and every
	// watcher gets fresh snapshots read over the new connection.
	k.do("CLIENT", "KILL", "ID", k.cacheClientID())
	k.do("SET", "c:1", "b") // possibly while Keyflux reconnects
	for _, s := range clients {
		for {
			ev := s.Next()
			if ev.Type == "snapshot" {
				break
			}
			if ev.Type != "update" {
				t.Fatalf("after CLIENT KILL got %s %s", ev.Type, ev.Data)
			}
		}
	}
	// Then Redis itself restarts (and forgets everything).
	if err := k.redis.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range clients {
		gone := map[string]bool{}
		for len(gone) < 2 {
			ev := s.Next()
			if st := keyState(t, ev); ev.Type == "snapshot" && !st.Exists {
				gone[st.Key] = true
			}
		}
	}
	k.do("SET", "c:1", "final")
	k.do("RPUSH", "c:2", "x", "y")
	for _, s := range clients {
		have := map[string]string{}
		for have["c:1"] != `"final"` || have["c:2"] != `["x","y"]` {
			st := keyState(t, s.Next())
			have[st.Key] = string(st.Value)
		}
	}
	// What Redis holds is what the API answers.
	if _, body := k.get("/api/keys/c:1"); body["value"] != "final" {
		t.Fatalf("api after restart: %v", body)
	}
}

func TestKeysReleasedWhenClientsLeave(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "0s")
	numsub := func(key string) int64 {
		m, _ := k.do("PUBSUB", "NUMSUB", "__keyspace@0__:"+key).ToArray()
		n, _ := m[1].AsInt64()
		return n
	}
	released := func() bool {
		return k.srv.hub.Topics() == 0 && k.srv.redis.Invalidations.Watched() == 0 && k.srv.sink.Clients() == 0 &&
			numsub("r:1") == 0 && numsub("r:2") == 0 && numsub("r:3") == 0
	}
	// Warm up: the caching connection and its reader stay for the process.
	w := k.open("/streams/keys?key=warm")
	w.Expect("connected")
	w.Close()
	testkit.Eventually(t, "warm-up released", released)
	k.do("SET", "warm", "x") // Redis forgets a tracked key once it is invalidated
	testkit.Eventually(t, "warm key untracked", func() bool { return k.infoStat("stats", "tracking_total_keys") == 0 })
	baseline := append([]goleak.Option{goleak.IgnoreCurrent()}, fasthttpOwn...)

	a := k.open("/streams/keys?key=r:1&key=r:2")
	b := k.open("/streams/keys?key=r:2&key=r:3") // shares r:2's upstream with a
	a.Expect("connected")
	snapshots(t, a, 2)
	b.Expect("connected")
	snapshots(t, b, 2)
	if k.srv.hub.Topics() != 3 || k.srv.redis.Invalidations.Watched() != 3 || numsub("r:2") != 1 {
		t.Fatalf("topics %d, watched %d, r:2 subscriptions %d; want 3, 3, 1",
			k.srv.hub.Topics(), k.srv.redis.Invalidations.Watched(), numsub("r:2"))
	}
	if n := k.infoStat("stats", "tracking_total_keys"); n != 3 {
		t.Fatalf("Redis tracks %d keys, want 3", n)
	}
	k.do("SET", "r:2", "x")
	expectKey(t, a, "update", "r:2")
	expectKey(t, b, "update", "r:2")
	a.Close()
	b.Close()
	testkit.Eventually(t, "upstreams released", released)
	goleak.VerifyNone(t, baseline...)

	// Redis still tracks the keys until each changes once; that change is
	// the last thing it sends, and Keyflux reads nothing for it.
	gets := k.cmdCalls("get")
	for _, key := range []string{"r:1", "r:2", "r:3"} {
		k.do("SET", key, "y")
	}
	testkit.Eventually(t, "Redis to forget the keys", func() bool { return k.infoStat("stats", "tracking_total_keys") == 0 })
	k.do("SET", "r:2", "z")
	if n := k.cmdCalls("get") - gets; n != 0 {
		t.Fatalf("%d reads of keys nobody watches", n)
	}
}

func TestKeysResume(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "1m")
	const path = "/streams/keys?key=j:1&key=j:2"
	s := k.open(path)
	s.Expect("connected")
	snapshots(t, s, 2)
	k.do("SET", "j:1", "a")
	expectKey(t, s, "update", "j:1")
	from := s.LastID
	s.Close()

	watch := k.open("/streams/keys?key=j:1&key=j:2")
	watch.Expect("connected")
	snapshots(t, watch, 2)
	k.do("SET", "j:2", "b")
	expectKey(t, watch, "update", "j:2")
	k.do("SET", "j:1", "c")
	expectKey(t, watch, "update", "j:1")

	// Both keys resume from the one id: j:1 changed once since, and gets
	// that update; j:2 also changed once, and gets it too, in the order
	// they happened. No snapshots.
	r := k.open(path, "Last-Event-ID", from)
	if c := r.Expect("connected"); c.LastEventID != "" {
		t.Fatalf("connected of a resume has id %q", c.LastEventID)
	}
	if d := expectKey(t, r, "update", "j:2"); d["value"] != "b" {
		t.Fatalf("replayed %v", d)
	}
	if d := expectKey(t, r, "update", "j:1"); d["value"] != "c" {
		t.Fatalf("replayed %v", d)
	}
	r.Close()
	// j:1 changes twice more: a client resuming from the same id missed
	// three values of it and gets one snapshot of the latest instead.
	for _, v := range []string{"c2", "c3"} {
		k.do("SET", "j:1", v)
		expectKey(t, watch, "update", "j:1")
	}
	r = k.open(path, "Last-Event-ID", from)
	r.Expect("connected")
	if d := expectKey(t, r, "snapshot", "j:1"); d["value"] != "c3" {
		t.Fatalf("healed with %v", d)
	}
	if d := expectKey(t, r, "update", "j:2"); d["value"] != "b" {
		t.Fatalf("replayed %v", d)
	}
	k.do("SET", "j:2", "live")
	if d := expectKey(t, r, "update", "j:2"); d["value"] != "live" {
		t.Fatalf("live %v", d)
	}
	expectKey(t, watch, "update", "j:2")

	// An id the process cannot vouch for: fresh snapshots, never a reset.
	for _, id := range []string{"foreign-3", strings.Split(from, "-")[0] + "-999999999"} {
		r := k.open(path, "Last-Event-ID", id)
		r.Expect("connected")
		snaps := snapshots(t, r, 2)
		if string(snaps["j:1"].Value) != `"c3"` || string(snaps["j:2"].Value) != `"live"` {
			t.Fatalf("id %s: snapshots %+v", id, snaps)
		}
		r.Close()
	}
}

func TestKeysBadInput(t *testing.T) {
	k := startKeyflux(t, nil, "--expose", "user:,order:", "--watch-max-keys", "3")
	many := "?key=user:1&key=user:2&key=user:3&key=user:4"
	cases := []struct {
		path   string
		status int
		error  string
	}{
		{"/streams/keys", 400, "at least one key"},
		{"/streams/keys?key=", 400, "empty"},
		{"/streams/keys?key=user:%FF", 400, "UTF-8"},
		{"/streams/keys?key=user:%0A", 400, "control"},
		{"/streams/keys?key=user:" + strings.Repeat("a", 2000), 400, "longer"},
		{"/streams/keys" + many, 400, "too many"},
		{"/streams/keys?key=user:1&key=session:1", 403, "exposed"},
		{"/streams/keys?key=user:1&lastEventId=" + strings.Repeat("1", 200), 400, "Last-Event-ID"},
		{"/streams/keyspace?pattern=user:*&values=maybe", 400, "values"},
		{"/streams/keyspace?pattern=user:*&values=true&db=3", 400, "values"},
		{"/api/keys/session:1", 403, "exposed"},
		{"/api/keys/user:%FF", 400, "UTF-8"},
		{"/api/keys/", 400, "empty"},
	}
	gets, types := k.cmdCalls("get"), k.cmdCalls("type")
	for _, c := range cases {
		status, body := k.get(c.path)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.error) {
			t.Errorf("%s: %d %v, want %d with %q", c.path, status, body, c.status, c.error)
		}
	}
	// A path no HTTP client would send: read the raw answer.
	conn, err := net.Dial("tcp", k.srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /api/keys/user:%%zz HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(raw), "HTTP/1.1 400") || !strings.Contains(string(raw), "percent-encoded") {
		t.Errorf("badly escaped key: %q", raw)
	}
	if k.srv.hub.Topics() != 0 || k.srv.redis.Invalidations.Watched() != 0 || k.srv.sink.Clients() != 0 {
		t.Fatal("a rejected request left a watch behind")
	}
	if k.cmdCalls("get") != gets || k.cmdCalls("type") != types || k.infoStat("stats", "tracking_total_keys") != 0 {
		t.Fatal("a rejected request read from Redis")
	}
	if n, _ := k.do("PUBSUB", "NUMSUB", "__keyspace@0__:user:1").ToArray(); len(n) != 2 {
		t.Fatal("PUBSUB NUMSUB answered", n)
	} else if c, _ := n[1].AsInt64(); c != 0 {
		t.Fatal("a rejected request subscribed")
	}
	ok := k.open("/streams/keys?key=user:1&key=user:1&key=user:1&key=order:1") // 2 distinct keys
	ok.Expect("connected")
}

func TestKeysAPIServedFromCache(t *testing.T) {
	k := startKeyflux(t, nil, "--allow-origin", "https://app.example")
	k.do("SET", "p:1", "one")
	req, _ := http.NewRequest("GET", k.base+"/api/keys/p:1", nil)
	req.Header.Set("Origin", "https://app.example") // CORS headers answer a listed page's Origin
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", resp.Header)
	}
	gets := k.cmdCalls("get")
	for range 20 {
		if _, body := k.get("/api/keys/p:1"); body["value"] != "one" {
			t.Fatalf("got %v", body)
		}
	}
	if n := k.cmdCalls("get") - gets; n != 0 {
		t.Fatalf("20 requests for a cached key cost %d GETs", n)
	}
	// A lost connection flushes the whole local cache (rueidis calls
	// OnInvalidations with nil once it notices): a change Keyflux could not
	// hear about meanwhile is not hidden behind a stale copy.
	flushes := k.srv.redis.Invalidations.Received()
	k.do("CLIENT", "KILL", "ID", k.cacheClientID())
	testkit.Eventually(t, "Keyflux to notice the lost connection", func() bool { return k.srv.redis.Invalidations.Received() > flushes })
	k.do("SET", "p:1", "changed unseen")
	if _, body := k.get("/api/keys/p:1"); body["value"] != "changed unseen" {
		t.Fatalf("after the connection was lost the API answered %v", body)
	}
	// A change invalidates the cached copy: the next request sees it.
	k.do("SET", "p:1", "two")
	testkit.Eventually(t, "the new value", func() bool { _, body := k.get("/api/keys/p:1"); return body["value"] == "two" })
	k.do("DEL", "p:1")
	testkit.Eventually(t, "404", func() bool {
		status, body := k.get("/api/keys/p:1")
		return status == 404 && body["exists"] == false && body["key"] == "p:1"
	})
	// Keys with slashes, spaces and dots reach Redis as they are.
	for _, key := range []string{"p:a/b", "p:a//b/../c", "p:a b", "p:%"} {
		k.do("SET", key, key)
		if status, body := k.get("/api/keys/" + url.PathEscape(key)); status != 200 || body["value"] != key {
			t.Fatalf("%q: %d %v", key, status, body)
		}
	}
}

func TestKeysBroadcastTracking(t *testing.T) {
	k := startKeyflux(t, nil, "--tracking", "bcast", "--expose", "b:,b:sub:,c:")
	list, _ := k.do("CLIENT", "LIST").ToString()
	if !strings.Contains(list, "name=keyflux-cache") || !strings.Contains(list, "flags=t") {
		t.Fatalf("no tracking connection in\n%s", list)
	}
	s := k.open("/streams/keys?key=b:1&key=c:1")
	s.Expect("connected")
	snapshots(t, s, 2)
	k.do("SET", "b:1", "x")
	if d := expectKey(t, s, "update", "b:1"); d["value"] != "x" {
		t.Fatalf("update %v", d)
	}
	k.do("SET", "b:unwatched", "x")
	k.do("SET", "c:1", "y")
	if d := expectKey(t, s, "update", "c:1"); d["value"] != "y" {
		t.Fatalf("update %v", d)
	}
	if n := k.infoStat("stats", "tracking_total_prefixes"); n != 2 {
		t.Fatalf("Redis tracks %d prefixes, want 2 (b: covers b:sub:)", n)
	}
	if n := k.infoStat("stats", "tracking_total_keys"); n != 0 {
		t.Fatalf("broadcast mode made Redis track %d keys", n)
	}
}

func TestKeyspaceWithValues(t *testing.T) {
	k := startKeyflux(t, nil)
	s := k.open("/streams/keyspace?pattern=kv:*&values=true")
	if d := testkit.Data(t, s.Expect("connected")); d["values"] != true {
		t.Fatalf("connected %v", d)
	}
	plain := k.open("/streams/keyspace?pattern=kv:*")
	plain.Expect("connected")
	k.do("HSET", "kv:1", "a", "1")
	d := testkit.Data(t, s.Expect("hset"))
	if d["type"] != "hash" || fmt.Sprint(d["value"]) != "map[a:1]" || d["key"] != "kv:1" {
		t.Fatalf("event %v", d)
	}
	if d := testkit.Data(t, plain.Expect("hset")); d["value"] != nil || d["type"] != nil {
		t.Fatalf("a stream without values got %v", d)
	}
	k.do("DEL", "kv:1")
	if d := testkit.Data(t, s.Expect("del")); d["type"] != "none" || d["value"] != nil {
		t.Fatalf("event %v", d)
	}
}

func TestKeysDeleteReasonWithoutNotifications(t *testing.T) {
	// Redis starts with notifications off and Keyflux may not turn them on:
	// tracking alone says a key changed, not why it went away.
	k := startKeyflux(t, nil, "--keyspace-config", "none")
	k.do("SET", "n:1", "x")
	k.do("SET", "n:2", "x", "PX", "40")
	s := k.open("/streams/keys?key=n:1&key=n:2")
	s.Expect("connected")
	snapshots(t, s, 2)
	// Past its TTL, a key that vanished expired.
	if d := expectKey(t, s, "delete", "n:2"); d["reason"] != "expired" {
		t.Fatalf("delete %v", d)
	}
	k.do("DEL", "n:1")
	if d := expectKey(t, s, "delete", "n:1"); d["reason"] != "unknown" {
		t.Fatalf("delete %v", d)
	}
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io_Copy(body, resp)
	for _, want := range []string{"keyflux_watched_keys 2", "keyflux_invalidations_total ", "keyflux_key_reads_total ",
		`keyflux_events_in_total{source="keys"} 2`, "keyflux_snapshots_sent_total 2"} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
