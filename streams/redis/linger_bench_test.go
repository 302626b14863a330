package redis

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// BenchmarkLingeringKeyspaceTopic opens b.N keyspace topics, each left by
// its only subscriber and lingering, and reports the memory each one holds
// (heap and goroutine stacks, after a GC): what a client costs that opens
// distinct streams and goes. Run with -benchtime=2000x for a stable figure.
func BenchmarkLingeringKeyspaceTopic(b *testing.B) {
	_, c := testkit.Redis(b, "--notify-keyspace-events", "KA")
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	src := &Keyspace{Upstreams: &Upstreams{Client: c, MaxPatterns: 64}}
	rec := testkit.NewRecorder()
	before := inUse()
	b.ResetTimer()
	for i := range b.N {
		s, err := h.Subscribe(src.Stream(streams.KeyspaceQuery{Pattern: "k" + strconv.Itoa(i) + ":*"}), rec, "")
		if err != nil {
			b.Fatal(err)
		}
		rec.Wait(b, i+1) // connected: the topic is live
		s.Close()
	}
	b.StopTimer()
	if h.Topics() != b.N {
		b.Fatalf("%d topics linger, want %d", h.Topics(), b.N)
	}
	b.ReportMetric(float64(inUse()-before)/float64(b.N), "B/topic")
	b.ReportMetric(0, "ns/op") // the time is Redis's round trips, not a figure
}

// inUse is the heap and stack memory in use after a collection.
func inUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
