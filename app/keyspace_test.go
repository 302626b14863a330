package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
	"go.uber.org/goleak"
)

var keyspaceFlags = []string{"--notify-keyspace-events", "KA"}

func TestKeyspaceStreamWireFormat(t *testing.T) {
	k := startKeyflux(t, nil, "--retry", "1500ms")
	r := k.openRaw("/streams/keyspace?pattern=user:*")
	h := r.Resp.Header
	if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" ||
		h.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", h)
	}
	// Each connection draws its retry from [--retry, 2 x --retry).
	got := r.Block(t)
	ms, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(got, "retry: "), "\n\n"))
	if !strings.HasPrefix(got, "retry: ") || err != nil || ms < 1500 || ms >= 3000 {
		t.Fatalf("first bytes %q, want the retry field in [1500, 3000)", got)
	}
	connected := r.Block(t)
	if !strings.HasPrefix(connected, "id: ") || !strings.Contains(connected, "\nevent: connected\ndata: {") {
		t.Fatalf("connected event %q", connected)
	}
	k.do("SET", "user:a\nevent: injected\n\ndata: x", "v")
	got = r.Block(t)
	lines := strings.Split(strings.TrimSuffix(got, "\n\n"), "\n")
	if len(lines) != 3 || lines[1] != "event: set" ||
		!strings.HasPrefix(lines[2], `data: {"key":"user:a\nevent: injected\n\ndata: x","event":"set","db":0,"ts":`) {
		t.Fatalf("a key with line breaks broke the framing: %q", got)
	}
}

func TestKeyspaceEvents(t *testing.T) {
	k := startKeyflux(t, nil)
	all := k.open("/streams/keyspace?pattern=user:*")
	only := k.open("/streams/keyspace?pattern=user:*&events=set,expired")
	c := testkit.Data(t, all.Expect("connected"))
	if c["pattern"] != "user:*" || c["stream"] != "keyspace" {
		t.Fatalf("connected data %v", c)
	}
	only.Expect("connected")

	k.do("SET", "order:1", "x") // another pattern
	k.do("SET", "user:1", "x")
	k.do("HSET", "user:2", "name", "ada")
	k.do("DEL", "user:1")
	k.do("SET", "user:3", "x", "PX", "20")

	for _, want := range []struct{ name, key string }{
		{"set", "user:1"}, {"hset", "user:2"}, {"del", "user:1"}, {"set", "user:3"},
		{"expire", "user:3"}, {"expired", "user:3"},
	} {
		ev := all.Expect(want.name)
		d := testkit.Data(t, ev)
		if d["key"] != want.key || d["event"] != want.name || d["db"] != 0.0 {
			t.Fatalf("event %s data %v, want key %s", ev.Type, d, want.key)
		}
		if ts := int64(d["ts"].(float64)); ts < time.Now().Add(-time.Minute).UnixMilli() {
			t.Fatalf("ts %d", ts)
		}
	}
	for _, want := range []string{"set", "set", "expired"} {
		only.Expect(want)
	}
}

func TestKeyspaceSharedAndReleased(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "100ms", "--keyspace-config", "none")
	// Warm up once, so that the baseline holds Redis connections that
	// stay for the life of the process.
	w := k.open("/streams/keyspace?pattern=warm")
	w.Expect("connected")
	w.Close()
	testkit.Eventually(t, "warm-up released", func() bool { return k.numpat() == 0 && k.srv.hub.Topics() == 0 })
	baseline := append([]goleak.Option{goleak.IgnoreCurrent()}, fasthttpOwn...)

	a := k.open("/streams/keyspace?pattern=user:*&events=set,del")
	b := k.open("/streams/keyspace?events=del,set,set&pattern=user:*") // same stream, other spelling
	a.Expect("connected")
	b.Expect("connected")
	if n := k.numpat(); n != 1 || k.srv.hub.Topics() != 1 {
		t.Fatalf("two clients of one stream: NUMPAT %d, topics %d; want 1, 1", n, k.srv.hub.Topics())
	}
	k.do("SET", "user:1", "x")
	if a.Expect("set").Data != b.Expect("set").Data {
		t.Fatal("clients of one stream got different data")
	}
	a.Close()
	b.Close()
	testkit.Eventually(t, "subscription released after the linger", func() bool {
		return k.numpat() == 0 && k.srv.hub.Topics() == 0 && k.srv.sink.Clients() == 0
	})
	goleak.VerifyNone(t, baseline...)
}

func TestDroppedClientReleasedWithinAHeartbeat(t *testing.T) {
	const heartbeat = 300 * time.Millisecond
	k := startKeyflux(t, keyspaceFlags, "--heartbeat", heartbeat.String(), "--linger", "0s")
	conn, err := net.Dial("tcp", k.srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET /streams/keyspace?pattern=x HTTP/1.1\r\nHost: k\r\n\r\n"))
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "event: connected") {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	if k.srv.sink.Clients() != 1 {
		t.Fatalf("%d clients", k.srv.sink.Clients())
	}
	conn.Close() // the browser tab is gone; no write from the server has failed yet
	closed := time.Now()
	testkit.Eventually(t, "server to notice the closed connection", func() bool {
		return k.srv.sink.Clients() == 0 && k.srv.hub.Topics() == 0 && k.numpat() == 0
	})
	if took := time.Since(closed); took > 3*heartbeat {
		t.Fatalf("released after %v, more than about one heartbeat (%v)", took, heartbeat)
	}
}

func TestHeartbeat(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--heartbeat", "100ms")
	r := k.openRaw("/streams/keyspace?pattern=quiet")
	r.Block(t) // retry
	r.Block(t) // connected
	if got := r.Block(t); got != ": ping\n\n" {
		t.Fatalf("idle stream sent %q, want a comment", got)
	}
}

func TestResumeWithLastEventID(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m", "--replay-size", "16")
	const path = "/streams/keyspace?pattern=job:*"
	s := k.open(path)
	s.Expect("connected")
	k.do("SET", "job:1", "a")
	s.Expect("set")
	resumeFrom := s.LastID
	s.Close()

	// Missed while away: the topic lingers and keeps them.
	watch := k.open(path) // a live witness tells us when they have passed
	watch.Expect("connected")
	for _, key := range []string{"job:2", "job:3", "job:4"} {
		k.do("SET", key, "b")
		watch.Expect("set")
	}

	missed := []string{"job:2", "job:3", "job:4"}
	for _, how := range []string{"header", "query"} {
		var r *testkit.Stream
		if how == "header" {
			r = k.open(path, "Last-Event-ID", resumeFrom)
		} else {
			r = k.open(path + "&lastEventId=" + resumeFrom)
		}
		c := r.Expect("connected")
		if c.LastEventID != "" {
			t.Fatalf("%s: connected of a resume carries id %q", how, c.LastEventID)
		}
		for _, key := range missed {
			if got := testkit.Data(t, r.Expect("set"))["key"]; got != key {
				t.Fatalf("%s: replayed %v, want %s", how, got, key)
			}
		}
		k.do("SET", "job:live-"+how, "c")
		if got := testkit.Data(t, r.Expect("set"))["key"]; got != "job:live-"+how {
			t.Fatalf("%s: after replay got %v, want the live event", how, got)
		}
		watch.Expect("set")
		missed = append(missed, "job:live-"+how)
		r.Close()
	}

	for _, id := range []string{"someone-else-7", strings.Split(resumeFrom, "-")[0] + "-999999999"} {
		r := k.open(path, "Last-Event-ID", id)
		r.Expect("connected")
		reset := testkit.Data(t, r.Expect("reset"))
		if reset["reason"] != "unknown-id" && reset["reason"] != "expired-id" {
			t.Fatalf("reset %v", reset)
		}
		r.Close()
	}
}

func TestResumeBeforeFirstEvent(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m")
	const path = "/streams/keyspace?pattern=q:*"
	s := k.open(path)
	s.Expect("connected")
	id := s.LastID
	if id == "" {
		t.Fatal("connected has no id: a reconnect before the first event could not resume")
	}
	s.Close()
	w := k.open(path)
	w.Expect("connected")
	k.do("SET", "q:1", "x")
	w.Expect("set")
	r := k.open(path, "Last-Event-ID", id)
	r.Expect("connected")
	if got := testkit.Data(t, r.Expect("set"))["key"]; got != "q:1" {
		t.Fatalf("got %v", got)
	}
}

func TestRedisRestartUnderLiveStream(t *testing.T) {
	k := startKeyflux(t, nil) // auto mode, Redis starts with notifications off
	s := k.open("/streams/keyspace?pattern=r:*")
	s.Expect("connected")
	k.do("SET", "r:1", "x")
	s.Expect("set")

	if err := k.redis.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	reset := testkit.Data(t, s.Expect("reset"))
	if reset["reason"] != "upstream-gap" {
		t.Fatalf("reset %v", reset)
	}
	flags, _ := k.do("CONFIG", "GET", "notify-keyspace-events").AsStrMap()
	if f := flags["notify-keyspace-events"]; !strings.Contains(f, "K") || !strings.Contains(f, "A") {
		t.Fatalf("flags after restart %q: not re-applied", f)
	}
	k.do("SET", "r:2", "x")
	if got := testkit.Data(t, s.Expect("set"))["key"]; got != "r:2" {
		t.Fatalf("after restart got %v", got)
	}
}

func TestNoneModeSendsNoConfig(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--keyspace-config", "none")
	s := k.open("/streams/keyspace?pattern=n:*")
	s.Expect("connected")
	k.do("SET", "n:1", "x")
	s.Expect("set")
	info, _ := k.do("INFO", "commandstats").ToString()
	if strings.Contains(info, "cmdstat_config") {
		t.Fatalf("mode none sent CONFIG:\n%s", info)
	}
}

func TestNoneModeWarnsWhenFlagsAreOff(t *testing.T) {
	k := startKeyflux(t, nil, "--keyspace-config", "none")
	if !strings.Contains(k.logs.String(), "keyspace notifications look disabled") {
		t.Fatalf("no warning in logs:\n%s", k.logs)
	}
	info, _ := k.do("INFO", "commandstats").ToString()
	if strings.Contains(info, "cmdstat_config") {
		t.Fatalf("mode none sent CONFIG:\n%s", info)
	}
}

func TestBadInput(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--expose", "user:,order:")
	cases := []struct {
		query  string
		status int
		error  string
	}{
		{"?pattern=user:*&db=x", 400, "db"},
		{"?pattern=user:*&db=-1", 400, "db"},
		{"?pattern=user:" + strings.Repeat("a", 2000), 400, "longer"},
		{"?pattern=user:%0Aa", 400, "control"},
		{"?pattern=user:%FF", 400, "UTF-8"},
		{"?pattern=", 400, "empty"},
		{"?pattern=user:*&events=set,Bad!", 400, "event name"},
		{"?pattern=user:*&events=set,,del", 400, "event name"},
		{"?pattern=*", 403, "exposed"},
		{"?pattern=us*", 403, "exposed"},
		{"?pattern=session:*", 403, "exposed"},
		{"", 403, "exposed"},
		{"?pattern=user:*&lastEventId=" + strings.Repeat("1", 200), 400, "Last-Event-ID"},
	}
	for _, c := range cases {
		status, body := k.get("/streams/keyspace" + c.query)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.error) {
			t.Errorf("%s: %d %v, want %d with %q", c.query, status, body, c.status, c.error)
		}
	}
	if k.numpat() != 0 || k.srv.hub.Topics() != 0 || k.srv.sink.Clients() != 0 {
		t.Fatal("a rejected request left a subscription behind")
	}
	status, body := k.get("/nowhere")
	if status != 404 || body["error"] == nil {
		t.Fatalf("unknown route: %d %v", status, body)
	}
	ok := k.open("/streams/keyspace?pattern=order:*")
	ok.Expect("connected")
}

func TestHealthReadyMetrics(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	if status, body := k.get("/healthz"); status != 200 || body["status"] != "ok" {
		t.Fatalf("healthz %d %v", status, body)
	}
	if status, _ := k.get("/readyz"); status != 200 {
		t.Fatalf("readyz %d", status)
	}
	s := k.open("/streams/keyspace?pattern=m:*")
	s.Expect("connected")
	k.do("SET", "m:1", "x")
	s.Expect("set")
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io_Copy(body, resp)
	for _, want := range []string{
		"keyflux_clients_connected 1", "keyflux_upstream_subscriptions 1",
		`keyflux_events_in_total{source="keyspace"} 1`, "keyflux_frames_out_total 1",
	} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	k.redis.Kill()
	if status, body := k.get("/readyz"); status != 503 || !strings.Contains(body["error"].(string), "redis") {
		t.Fatalf("readyz with Redis down: %d %v", status, body)
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	s := k.open("/streams/keyspace?pattern=s:*")
	s.Expect("connected")
	k.stop()
	s.Ended()
}

func io_Copy(dst *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		dst.Write(buf[:m])
		n += int64(m)
		if err != nil {
			return n, nil
		}
	}
}
