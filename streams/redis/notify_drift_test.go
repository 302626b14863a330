package redis

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// resetOf decodes a reset frame's data.
func resetOf(t *testing.T, f *streams.Frame) map[string]string {
	t.Helper()
	if name := testkit.Field(f.Bytes, "event"); name != "reset" {
		t.Fatalf("got %s %s, want a reset", name, testkit.Field(f.Bytes, "data"))
	}
	var d map[string]string
	if err := json.Unmarshal([]byte(testkit.Field(f.Bytes, "data")), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNotifyDriftIsRestoredAndResetsKeyspaceStreams(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	n := &NotifyConfig{Client: c, Mode: NotifyAuto, Interval: 50 * time.Millisecond, Metrics: NewNotifyMetrics(nil)}
	if err := n.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	ks := &Keyspace{Upstreams: &Upstreams{Client: c}, Notify: n}
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "d:*"}), r, "")
	defer s.Close()
	r.Wait(t, 1)
	testkit.Do(t, c, "SET", "d:1", "x")
	r.Wait(t, 2)

	testkit.Do(t, c, "CONFIG", "SET", "notify-keyspace-events", "")
	testkit.Do(t, c, "SET", "d:lost", "x") // no notification: it is off
	if d := resetOf(t, r.Wait(t, 3)[2]); d["reason"] != streams.ResetNotifyConfig {
		t.Fatalf("reset %v, want reason %s", d, streams.ResetNotifyConfig)
	}
	if got := testutil.ToFloat64(n.Metrics.Restored); got != 1 {
		t.Fatalf("restored counter %v, want 1", got)
	}
	flags, _ := testkit.Do(t, c, "CONFIG", "GET", "notify-keyspace-events").AsStrMap()
	if Needed(flags["notify-keyspace-events"]) != "" {
		t.Fatalf("flags %q not restored", flags["notify-keyspace-events"])
	}
	testkit.Do(t, c, "SET", "d:2", "x")
	if data := testkit.Field(r.Wait(t, 4)[3].Bytes, "data"); !strings.Contains(data, `"key":"d:2"`) {
		t.Fatalf("after the reset got %s, want d:2's set", data)
	}
}

func TestNotifyChecksOnlyWhileKeyspaceStreamsLive(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	const every = 20 * time.Millisecond
	n := &NotifyConfig{Client: c, Mode: NotifyAuto, Interval: every}
	if err := n.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Nothing can be awaited to show that nothing happens: ten intervals.
	quiet := func(what string) {
		before := configCalls(t, c)
		time.Sleep(10 * every)
		if calls := configCalls(t, c) - before; calls != 0 {
			t.Fatalf("%s: %d CONFIG commands in %v", what, calls, 10*every)
		}
	}
	quiet("no keyspace stream")

	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	ks := &Keyspace{Upstreams: &Upstreams{Client: c}, Notify: n}
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "*"}), r, "")
	r.Wait(t, 1)
	before := configCalls(t, c)
	testkit.Eventually(t, "periodic checks", func() bool { return configCalls(t, c)-before >= 3 })
	s.Close()
	testkit.Eventually(t, "the check to stop", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.stop == nil && h.Topics() == 0
	})
	time.Sleep(2 * every) // a check under way when it stopped may still finish
	quiet("after the last keyspace stream left")
}

func TestNotifyNoneReportsMissingFlags(t *testing.T) {
	_, c := testkit.Redis(t) // notifications off
	n := &NotifyConfig{Client: c, Mode: NotifyNone, Interval: 50 * time.Millisecond, Metrics: NewNotifyMetrics(nil)}
	if err := n.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := n.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "notify-keyspace-events") {
		t.Fatalf("Ready = %v, want the missing flags named", err)
	}
	if got := testutil.ToFloat64(n.Metrics.Missing); got != 1 {
		t.Fatalf("missing gauge %v, want 1", got)
	}
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	ks := &Keyspace{Upstreams: &Upstreams{Client: c}, Notify: n}
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "n:*"}), r, "")
	defer s.Close()
	var connected map[string]any
	if err := json.Unmarshal([]byte(testkit.Field(r.Wait(t, 1)[0].Bytes, "data")), &connected); err != nil {
		t.Fatal(err)
	}
	if w, _ := connected["warning"].(string); !strings.Contains(w, "notify-keyspace-events") {
		t.Fatalf("connected %v, want a warning", connected)
	}

	// The operator fixes the flags: the stream learns it missed events.
	testkit.Do(t, c, "CONFIG", "SET", "notify-keyspace-events", "KA")
	if d := resetOf(t, r.Wait(t, 2)[1]); d["reason"] != streams.ResetNotifyConfig {
		t.Fatalf("reset %v, want reason %s", d, streams.ResetNotifyConfig)
	}
	if err := n.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with flags back: %v", err)
	}
	testkit.Do(t, c, "SET", "n:1", "x")
	if data := testkit.Field(r.Wait(t, 3)[2].Bytes, "data"); !strings.Contains(data, `"key":"n:1"`) {
		t.Fatalf("got %s, want n:1's set (and no probe key)", data)
	}
	if calls := configCalls(t, c); calls != 1 { // the test's own CONFIG SET
		t.Fatalf("mode none sent %d CONFIG commands", calls-1)
	}
}

// A burst of /readyz calls, which anyone may send, costs Redis one check per
// interval, not one each: the calls that find a check running use its answer.
func TestNotifyReadyChecksOnceForConcurrentCalls(t *testing.T) {
	_, c := testkit.Redis(t)
	n := &NotifyConfig{Client: c, Mode: NotifyAuto, Interval: time.Hour, Metrics: NewNotifyMetrics(nil)}
	if err := n.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.checked = time.Time{} // stale: the next Ready checks
	n.mu.Unlock()
	before := testkit.CommandCalls(t, c, "config|get")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := n.Ready(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := testkit.CommandCalls(t, c, "config|get") - before; got != 1 {
		t.Fatalf("50 concurrent Ready calls sent %d CONFIG GET, want 1", got)
	}
}
