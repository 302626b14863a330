package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/streams/testkit"
)

func (k *keyflux) xadd(key string, fields ...string) string {
	k.t.Helper()
	id, err := k.do(append([]string{"XADD", key, "*"}, fields...)...).ToString()
	if err != nil {
		k.t.Fatal(err)
	}
	return id
}

// blockedClients is how many Redis clients wait in a blocking command.
func (k *keyflux) blockedClients() int {
	info, _ := k.do("INFO", "clients").ToString()
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "blocked_clients:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	k.t.Fatalf("no blocked_clients in %q", info)
	return -1
}

func TestLogTail(t *testing.T) {
	k := startKeyflux(t, nil)
	old := k.xadd("Orders/EU", "n", "0")
	s := k.open("/streams/log/Orders%2FEU")
	c := s.Expect("connected")
	if d := testkit.Data(t, c); d["stream"] != "log" || d["key"] != "Orders/EU" {
		t.Fatalf("connected %v", d)
	}
	if c.LastEventID != old {
		t.Fatalf("connected id %q, want the newest entry %q (new entries only)", c.LastEventID, old)
	}
	id := k.xadd("Orders/EU", "z", "1", "a", "line\nbreak \"quoted\" é")
	ev := s.Expect("entry")
	if ev.LastEventID != id || ev.Data != `{"z":"1","a":"line\nbreak \"quoted\" é"}` {
		t.Fatalf("entry id %q data %s, want id %s and the fields in order", ev.LastEventID, ev.Data, id)
	}
	k.xadd("Orders/EU", "event", "order-paid", "order", "42")
	if d := testkit.Data(t, s.Expect("order-paid")); d["order"] != "42" || d["event"] != "order-paid" {
		t.Fatalf("named entry %v", d)
	}
	k.xadd("Orders/EU", "event", "connected")
	s.Expect("entry") // Keyflux's own names cannot be spoofed
}

func TestLogFromAndBacklog(t *testing.T) {
	k := startKeyflux(t, nil)
	var ids []string
	for i := 1; i <= 5; i++ {
		ids = append(ids, k.xadd("log", "n", strconv.Itoa(i)))
	}
	back := k.open("/streams/log/log?backlog=2")
	from := k.open("/streams/log/log?from=" + ids[1])
	for _, s := range []*testkit.Stream{back, from} {
		if c := s.Expect("connected"); c.LastEventID != "" {
			t.Fatalf("connected of a history start has id %q: a reconnect would skip the history", c.LastEventID)
		}
	}
	k.xadd("log", "n", "6")
	for _, c := range []struct {
		s    *testkit.Stream
		want []int
	}{{back, []int{4, 5, 6}}, {from, []int{2, 3, 4, 5, 6}}} {
		for _, n := range c.want {
			if got := testkit.Data(t, c.s.Expect("entry"))["n"]; got != strconv.Itoa(n) {
				t.Fatalf("got entry %v, want %d", got, n)
			}
		}
	}
}

func TestLogTrimmedAndUnknownIDs(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "1m")
	var ids []string
	for i := 1; i <= 10; i++ {
		ids = append(ids, k.xadd("t", "n", strconv.Itoa(i)))
	}
	k.do("XTRIM", "t", "MAXLEN", "5") // 6..10 remain
	entries := func(s *testkit.Stream, from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			ev := s.Expect("entry")
			if got := testkit.Data(t, ev)["n"]; got != strconv.Itoa(n) || ev.LastEventID != ids[n-1] {
				t.Fatalf("got entry %v (%s), want %d", got, ev.LastEventID, n)
			}
		}
	}

	lost := k.open("/streams/log/t", "Last-Event-ID", ids[2]) // saw 3: 4 and 5 are gone
	lost.Expect("connected")
	if d := testkit.Data(t, lost.Expect("reset")); d["reason"] != "expired-id" || d["first"] != ids[5] {
		t.Fatalf("reset %v, want expired-id with first %s", d, ids[5])
	}
	entries(lost, 6, 10)

	whole := k.open("/streams/log/t?lastEventId=" + ids[6]) // saw 7: nothing is missing
	whole.Expect("connected")
	entries(whole, 8, 10)

	k.do("XDEL", "t", ids[8]) // 9 is deleted before a client that saw 8 returns
	del := k.open("/streams/log/t", "Last-Event-ID", ids[7])
	del.Expect("connected")
	if d := testkit.Data(t, del.Expect("reset")); d["reason"] != "expired-id" {
		t.Fatalf("reset %v after XDEL", d)
	}
	entries(del, 10, 10)

	for _, id := range []string{"99999999999999-0", "not-an-id", "1-2-3"} {
		s := k.open("/streams/log/t", "Last-Event-ID", id)
		if c := s.Expect("connected"); c.LastEventID != ids[9] {
			t.Fatalf("%s: connected id %q, want the newest %s", id, c.LastEventID, ids[9])
		}
		if d := testkit.Data(t, s.Expect("reset")); d["reason"] != "unknown-id" {
			t.Fatalf("%s: reset %v", id, d)
		}
		s.Close()
	}
	ids = append(ids, k.xadd("t", "n", "11"))
	entries(lost, 11, 11)
	entries(whole, 11, 11)
	entries(del, 11, 11)
}

// exactResume writes 1,000 entries at full speed while a client reads the
// log and, five times, drops its connection and resumes with Last-Event-ID
// on the process next(i) returns. It must end with exactly entries
// 1..1000, in order.
func exactResume(t *testing.T, first *keyflux, next func(i int) *keyflux) {
	const total, reconnects = 1000, 5
	const path = "/streams/log/feed"
	s := first.open(path)
	if c := s.Expect("connected"); c.LastEventID != "0-0" {
		t.Fatalf("connected to an empty log has id %q, want 0-0", c.LastEventID)
	}
	var last string

	writer, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{first.redis.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			cmd := writer.B().Xadd().Key("feed").Id("*").FieldValue().FieldValue("n", strconv.Itoa(i)).Build()
			if err := writer.Do(context.Background(), cmd).Error(); err != nil {
				t.Errorf("XADD %d: %v", i, err)
				return
			}
			written.Store(int64(i))
		}
	}()
	defer wg.Wait()

	var got []int
	moved := 0
	for len(got) < total {
		ev := s.Next()
		if ev.Type != "entry" {
			t.Fatalf("after %d entries: unexpected %s %s", len(got), ev.Type, ev.Data)
		}
		var d struct{ N string }
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(d.N)
		got = append(got, n)
		last = ev.LastEventID
		if moved < reconnects && len(got)%(total/(reconnects+1)) == 0 {
			moved++
			t.Logf("reconnecting after entry %d, %d written", len(got), written.Load())
			s.Close()
			k := next(moved)
			s = k.open(path, "Last-Event-ID", last)
			if c := s.Expect("connected"); c.LastEventID != "" {
				t.Fatalf("connected of a resume has id %q", c.LastEventID)
			}
		}
	}
	if moved != reconnects {
		t.Fatalf("reconnected %d times", moved)
	}
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("entry %d is %d, want %d: lost or repeated at a seam", i, n, i+1)
		}
	}
}

func TestLogExactResumeSameProcess(t *testing.T) {
	k := startKeyflux(t, nil)
	exactResume(t, k, func(int) *keyflux { return k })
}

func TestLogExactResumeAcrossRestarts(t *testing.T) {
	rs := testkit.StartRedis(t)
	k := startKeyfluxOn(t, rs)
	exactResume(t, k, func(int) *keyflux {
		k.shutdown()
		k = startKeyfluxOn(t, rs)
		return k
	})
}

func TestLogExactResumeAcrossProcesses(t *testing.T) {
	rs := testkit.StartRedis(t)
	a, b := startKeyfluxOn(t, rs), startKeyfluxOn(t, rs)
	exactResume(t, a, func(i int) *keyflux {
		if i%2 == 1 {
			return b
		}
		return a
	})
}

func TestLogReadersReleased(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "100ms")
	w := k.open("/streams/log/warm")
	w.Expect("connected")
	w.Close()
	testkit.Eventually(t, "warm-up released", func() bool { return k.blockedClients() == 0 && k.srv.hub.Topics() == 0 })
	// Keyed commands go to a random one of rueidis's few pipeline
	// connections, each opened on first use and kept, and switched for good
	// to its reader and writer goroutines by a cancellable command: do
	// that to all of them now.
	c := k.srv.redis.StreamLogs.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 64 {
		if err := c.Do(ctx, c.B().Exists().Key("warm").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	baseline := append([]goleak.Option{goleak.IgnoreCurrent()}, fasthttpOwn...)

	a1 := k.open("/streams/log/a")
	a2 := k.open("/streams/log/a?backlog=5")
	b := k.open("/streams/log/b")
	for _, s := range []*testkit.Stream{a1, a2, b} {
		s.Expect("connected")
	}
	testkit.Eventually(t, "one blocking reader per stream key", func() bool { return k.blockedClients() == 2 })
	if n := k.srv.redis.StreamLogs.Readers(); n != 2 {
		t.Fatalf("%d XREAD loops for two keys", n)
	}
	// The blocked readers hold connections of their own: the shared
	// pipeline still answers.
	if status, _ := k.get("/readyz"); status != 200 {
		t.Fatalf("readyz %d while readers block", status)
	}
	k.xadd("a", "x", "1")
	a1.Expect("entry")
	a2.Expect("entry")
	for _, s := range []*testkit.Stream{a1, a2, b} {
		s.Close()
	}
	testkit.Eventually(t, "blocking readers released", func() bool {
		return k.blockedClients() == 0 && k.srv.redis.StreamLogs.Readers() == 0 && k.srv.hub.Topics() == 0 && k.srv.sink.Clients() == 0
	})
	goleak.VerifyNone(t, baseline...)
}

func TestLogBadInput(t *testing.T) {
	k := startKeyflux(t, nil, "--expose", "orders:")
	k.do("SET", "orders:str", "x")
	cases := []struct {
		path   string
		status int
		error  string
	}{
		{"/streams/log/", 400, "stream key"},
		{"/streams/log/orders:1?from=abc", 400, "from"},
		{"/streams/log/orders:1?from=1-x", 400, "from"},
		{"/streams/log/orders:1?from=1-0&backlog=2", 400, "not both"},
		{"/streams/log/orders:1?backlog=0", 400, "backlog"},
		{"/streams/log/orders:1?backlog=10001", 400, "backlog"},
		{"/streams/log/orders:1?backlog=x", 400, "backlog"},
		{"/streams/log/orders:%0D", 400, "control"},
		{"/streams/log/orders:1?lastEventId=" + strings.Repeat("1", 200), 400, "Last-Event-ID"},
		{"/streams/log/secrets", 403, "exposed"},
		{"/streams/log/orders:str", 409, "not a stream"},
	}
	for _, c := range cases {
		status, body := k.get(c.path)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.error) {
			t.Errorf("%s: %d %v, want %d with %q", c.path, status, body, c.status, c.error)
		}
	}
	if k.blockedClients() != 0 || k.srv.redis.StreamLogs.Readers() != 0 || k.srv.hub.Topics() != 0 || k.srv.sink.Clients() != 0 {
		t.Fatal("a rejected request left a reader behind")
	}
	if n, _ := k.do("EXISTS", "orders:1").AsInt64(); n != 0 {
		t.Fatal("a rejected request created a key")
	}
}

// A history far larger than a client's queue is replayed at the client's
// pace, in one connection, instead of overflowing the queue.
func TestLogLongHistoryIsPaced(t *testing.T) {
	k := startKeyflux(t, nil, "--queue-bytes", "4096")
	const total = 3000
	pad := strings.Repeat("x", 200)
	cmds := make(rueidis.Commands, 0, total)
	for i := 1; i <= total; i++ {
		cmds = append(cmds, k.rc.B().Xadd().Key("big").Id("*").FieldValue().
			FieldValue("n", strconv.Itoa(i)).FieldValue("pad", pad).Build())
	}
	for _, r := range k.rc.DoMulti(context.Background(), cmds...) {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	s := k.open("/streams/log/big?from=0")
	s.Expect("connected")
	for i := 1; i <= total; i++ {
		if got := testkit.Data(t, s.Expect("entry"))["n"]; got != strconv.Itoa(i) {
			t.Fatalf("entry %v, want %d", got, i)
		}
	}
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io_Copy(body, resp)
	if strings.Contains(body.String(), "keyflux_slow_consumers_total{") {
		t.Fatal("the replay overflowed the client's queue")
	}
}

// The XREAD loop outlives a Redis restart (which, without persistence,
// also loses the stream), and a client that comes back after it is told
// its place in the history is gone.
func TestLogSurvivesRedisRestart(t *testing.T) {
	k := startKeyflux(t, nil, "--linger", "1m")
	s := k.open("/streams/log/r")
	s.Expect("connected")
	k.xadd("r", "n", "1")
	seen := s.Expect("entry").LastEventID
	if err := k.redis.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	k.xadd("r", "n", "2")
	if got := testkit.Data(t, s.Expect("entry"))["n"]; got != "2" {
		t.Fatalf("after the restart got %v", got)
	}
	back := k.open("/streams/log/r", "Last-Event-ID", seen)
	back.Expect("connected")
	if d := testkit.Data(t, back.Expect("reset")); d["reason"] != "expired-id" {
		t.Fatalf("reset %v: %s went with the old Redis, so nothing proves the history after it whole", d, seen)
	}
	if got := testkit.Data(t, back.Expect("entry"))["n"]; got != "2" {
		t.Fatalf("after the reset got %v", got)
	}
}
