package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

func TestKeyspaceSourceFiltersOnceAndReleases(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	ks := &Keyspace{Upstreams: &Upstreams{Client: c}}
	spec := ks.Stream(streams.KeyspaceQuery{Pattern: "user:*", Events: []string{"del", "set"}})
	r1, r2 := testkit.NewRecorder(), testkit.NewRecorder()
	s1, _ := h.Subscribe(spec, r1, "")
	s2, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "user:*", Events: []string{"del", "set"}}), r2, "")
	r1.Wait(t, 1)
	r2.Wait(t, 1)
	if n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64(); n != 1 {
		t.Fatalf("PUBSUB NUMPAT = %d with two subscribers of one stream, want 1", n)
	}
	testkit.Do(t, c, "SET", "other:1", "x")
	testkit.Do(t, c, "HSET", "user:2", "f", "v") // filtered out by events
	testkit.Do(t, c, "SET", "user:1", "x")
	testkit.Do(t, c, "DEL", "user:1")
	got := r1.Wait(t, 3)
	if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected set del]" {
		t.Fatalf("events %v", names)
	}
	var ev streams.KeyspaceEvent
	if err := json.Unmarshal([]byte(testkit.Field(got[1].Bytes, "data")), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Key != "user:1" || ev.Event != "set" || ev.DB != 0 || ev.TS < time.Now().Add(-time.Minute).UnixMilli() {
		t.Fatalf("event %+v", ev)
	}
	if r2.Wait(t, 3)[1] != got[1] {
		t.Fatal("frame encoded per subscriber")
	}
	s1.Close()
	s2.Close()
	testkit.Eventually(t, "PUNSUBSCRIBE", func() bool {
		n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64()
		return n == 0 && h.Topics() == 0
	})
}

func TestKeyspaceSourceOtherDB(t *testing.T) {
	srv, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	db3, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, SelectDB: 3, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	h := streams.NewHub(streams.HubOptions{})
	defer h.Close()
	r := testkit.NewRecorder()
	s, _ := h.Subscribe((&Keyspace{Upstreams: &Upstreams{Client: c}}).Stream(streams.KeyspaceQuery{DB: 3, Pattern: "*"}), r, "")
	defer s.Close()
	r.Wait(t, 1)
	testkit.Do(t, c, "SET", "in-db0", "x")
	testkit.Do(t, db3, "SET", "in-db3", "x")
	got := r.Wait(t, 2)
	if !strings.Contains(testkit.Field(got[1].Bytes, "data"), `"key":"in-db3","event":"set","db":3`) {
		t.Fatalf("event %q", testkit.Field(got[1].Bytes, "data"))
	}
}

func TestNeeded(t *testing.T) {
	for have, want := range map[string]string{
		"":           "KA",
		"Ex":         "KA",
		"AKE":        "",
		"K":          "A",
		"A":          "K",
		"Kg$lshzxet": "",
		"Kg$lshzxe":  "A",
	} {
		if got := Needed(have); got != want {
			t.Errorf("Needed(%q) = %q, want %q", have, got, want)
		}
	}
}

func TestNotifyAutoAddsWithoutRemoving(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "Ex")
	n := &NotifyConfig{Client: c, Mode: NotifyAuto}
	if err := n.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := testkit.Do(t, c, "CONFIG", "GET", "notify-keyspace-events").AsStrMap()
	flags := got["notify-keyspace-events"]
	for _, f := range []string{"K", "E", "A"} { // E was there before and stays
		if !strings.Contains(flags, f) {
			t.Fatalf("notify-keyspace-events %q lacks %s", flags, f)
		}
	}
	before := configCalls(t, c)
	if err := n.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := configCalls(t, c) - before; calls != 1 {
		t.Fatalf("Ensure with flags in place sent %d CONFIG commands, want 1 (GET only)", calls)
	}
}

func TestNotifyNoneNeverSendsConfig(t *testing.T) {
	_, c := testkit.Redis(t)
	n := &NotifyConfig{Client: c, Mode: NotifyNone}
	if err := n.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	ok, err := n.Probe(context.Background(), 0, 300*time.Millisecond)
	if err != nil || ok {
		t.Fatalf("probe with notifications off: %v %v, want false", ok, err)
	}
	if calls := configCalls(t, c); calls != 0 {
		t.Fatalf("mode none sent %d CONFIG commands", calls)
	}
	_, c = testkit.Redis(t, "--notify-keyspace-events", "KA")
	n = &NotifyConfig{Client: c, Mode: NotifyNone}
	ok, err = n.Probe(context.Background(), 0, 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("probe with notifications on: %v %v, want true", ok, err)
	}
	if calls := configCalls(t, c); calls != 0 {
		t.Fatalf("mode none sent %d CONFIG commands", calls)
	}
}

// configCalls counts the CONFIG commands the server has run.
func configCalls(t *testing.T, c rueidis.Client) int {
	t.Helper()
	info, err := testkit.Do(t, c, "INFO", "commandstats").ToString()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_config"); ok {
			var calls int
			_, after, _ := strings.Cut(rest, "calls=")
			fmt.Sscanf(after, "%d", &calls)
			total += calls
		}
	}
	return total
}

func TestUpstreamSharedAcrossOperators(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	h := streams.NewHub(streams.HubOptions{Linger: 0})
	defer h.Close()
	ups := &Upstreams{Client: c}
	ks := &Keyspace{Upstreams: ups}
	sets, dels := testkit.NewRecorder(), testkit.NewRecorder()
	s1, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "k*", Events: []string{"set"}}), sets, "")
	s2, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "k*", Events: []string{"del"}}), dels, "")
	sets.Wait(t, 1)
	dels.Wait(t, 1)
	if n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64(); n != 1 || h.Topics() != 2 || ups.Live() != 1 {
		t.Fatalf("NUMPAT %d topics %d upstreams %d; want 1, 2, 1", n, h.Topics(), ups.Live())
	}
	testkit.Do(t, c, "SET", "k1", "x")
	testkit.Do(t, c, "DEL", "k1")
	if names := testkit.EventNames(sets.Wait(t, 2)); names[1] != "set" {
		t.Fatalf("set stream got %v", names)
	}
	if names := testkit.EventNames(dels.Wait(t, 2)); names[1] != "del" {
		t.Fatalf("del stream got %v", names)
	}
	// One leaves: the other keeps its subscription.
	s1.Close()
	testkit.Eventually(t, "first topic release", func() bool { return h.Topics() == 1 })
	testkit.Do(t, c, "DEL", "k1")
	testkit.Do(t, c, "SET", "k2", "x")
	testkit.Do(t, c, "DEL", "k2")
	if names := testkit.EventNames(dels.Wait(t, 3)); names[2] != "del" {
		t.Fatalf("del stream after the other left: %v", names)
	}
	// Leaving and rejoining at once must not let the old PUNSUBSCRIBE
	// cancel the new PSUBSCRIBE.
	s2.Close()
	again := testkit.NewRecorder()
	s3, _ := h.Subscribe(ks.Stream(streams.KeyspaceQuery{Pattern: "k*"}), again, "")
	again.Wait(t, 1)
	testkit.Do(t, c, "SET", "k3", "x")
	if names := testkit.EventNames(again.Wait(t, 2)); names[1] != "set" {
		t.Fatalf("rejoined stream got %v", names)
	}
	if n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64(); n != 1 {
		t.Fatalf("NUMPAT %d after rejoin", n)
	}
	s3.Close()
	testkit.Eventually(t, "all released", func() bool {
		n, _ := testkit.Do(t, c, "PUBSUB", "NUMPAT").AsInt64()
		return n == 0 && ups.Live() == 0
	})
}
