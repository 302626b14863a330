package streams_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// At MaxTopics a new topic releases the oldest lingering one (its upstream
// ends), never one with subscribers; when all have subscribers it is
// refused and nothing starts.
func TestHubMaxTopicsReleasesTheOldestLingeringFirst(t *testing.T) {
	m := streams.NewMetrics(nil)
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, MaxTopics: 3, Metrics: m})
	defer h.Close()
	specs := make([]*memSpec, 6)
	for i := range specs {
		specs[i] = newMemSpec(fmt.Sprint("t", i))
	}
	join := func(s *memSpec) *streams.Subscription {
		t.Helper()
		sub, err := h.Subscribe(s, testkit.NewRecorder(), "")
		if err != nil {
			t.Fatalf("%s: %v", s.key, err)
		}
		return sub
	}
	// t0 and t1 linger (t0 the older), t2 has a subscriber.
	join(specs[0]).Close()
	join(specs[1]).Close()
	held := join(specs[2])
	defer held.Close()

	join(specs[3]).Close() // releases t0
	testkit.Eventually(t, "t0's upstream to end", func() bool { return specs[0].closed.Load() == 1 })
	if h.Topics() != 3 || specs[1].closed.Load() != 0 || specs[2].closed.Load() != 0 {
		t.Fatalf("topics %d; t1 closed %d, t2 closed %d", h.Topics(), specs[1].closed.Load(), specs[2].closed.Load())
	}
	// Rejoining a lingering topic takes it off the list: t3 is left to go.
	rejoined := join(specs[1])
	defer rejoined.Close()
	extra := join(specs[4]) // releases t3, the only lingering one
	defer extra.Close()
	testkit.Eventually(t, "t3's upstream to end", func() bool { return specs[3].closed.Load() == 1 })
	if h.Topics() != 3 || specs[1].closed.Load() != 0 {
		t.Fatalf("topics %d, t1 closed %d", h.Topics(), specs[1].closed.Load())
	}
	if got := testutil.ToFloat64(m.TopicsEvicted); got != 2 {
		t.Fatalf("evicted %v, want 2", got)
	}

	// Every topic has a subscriber now.
	_, err := h.Subscribe(specs[5], testkit.NewRecorder(), "")
	if !errors.Is(err, streams.ErrTooManyTopics) {
		t.Fatalf("a fourth topic with all three held: %v, want ErrTooManyTopics", err)
	}
	if specs[5].opened.Load() != 0 || h.Topics() != 3 || testutil.ToFloat64(m.TopicsRefused) != 1 {
		t.Fatalf("refused topic opened %d times; topics %d", specs[5].opened.Load(), h.Topics())
	}
	// An existing topic still takes subscribers at the cap.
	join(specs[2]).Close()
}

// A request for several topics starts none of them unless all fit, and
// does not release a lingering topic it is itself asking for.
func TestHubMaxTopicsAllOrNothing(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, MaxTopics: 3})
	defer h.Close()
	a, b, c, d := newMemSpec("a"), newMemSpec("b"), newMemSpec("c"), newMemSpec("d")
	held, err := h.Subscribe(a, testkit.NewRecorder(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lingering, err := h.Subscribe(b, testkit.NewRecorder(), "")
	if err != nil {
		t.Fatal(err)
	}
	lingering.Close()
	// b lingers, a is held: b, c and d cannot all fit with a.
	_, err = h.SubscribeAll([]streams.Join{{Spec: b}, {Spec: c}, {Spec: d}}, testkit.NewRecorder(), "")
	if !errors.Is(err, streams.ErrTooManyTopics) {
		t.Fatalf("three topics beside a held one: %v, want ErrTooManyTopics", err)
	}
	if c.opened.Load() != 0 || d.opened.Load() != 0 || b.closed.Load() != 0 || h.Topics() != 2 {
		t.Fatalf("refused request changed topics: c %d d %d opened, b closed %d, topics %d",
			c.opened.Load(), d.opened.Load(), b.closed.Load(), h.Topics())
	}
	subs, err := h.SubscribeAll([]streams.Join{{Spec: b}, {Spec: c}}, testkit.NewRecorder(), "")
	if err != nil {
		t.Fatalf("b (lingering) and c beside a: %v", err)
	}
	for _, s := range subs {
		s.Close()
	}
	if b.closed.Load() != 0 || h.Topics() != 3 {
		t.Fatalf("b closed %d, topics %d", b.closed.Load(), h.Topics())
	}
}
