package redis

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"go.uber.org/goleak"
)

// TestDemoStory runs the demo fast and checks that every kind of event it
// promises shows up, and that stopping it leaves nothing running.
func TestDemoStory(t *testing.T) {
	_, c := testkit.Redis(t, "--notify-keyspace-events", "KA")
	h := streams.NewHub(streams.HubOptions{})
	defer h.Close()
	r := testkit.NewRecorder()
	sub, _ := h.Subscribe((&Keyspace{Upstreams: &Upstreams{Client: c}}).Stream(streams.KeyspaceQuery{Pattern: "*"}), r, "")
	defer sub.Close()
	r.Wait(t, 1) // connected
	// The demo borrows the test's client, whose connections start and stop
	// reader goroutines of their own as traffic comes and goes.
	baseline := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundRead"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundWrite")}

	stop := startDemo(c, 2*time.Millisecond, slog.New(slog.DiscardHandler))
	want := map[string]bool{
		"set sensor:kitchen:temp": false, "expired sensor:garage:temp": false,
		"set session": false, "expired session": false, "del session": false, "expire session": false,
		"hset order": false, "del order": false, "incrby stats:visits": false,
	}
	missing := len(want)
	for n := 2; missing > 0; n++ {
		ev := testkit.Parse(r.Wait(t, n)[n-1].Bytes)
		key, _ := testkit.Data(t, ev)["key"].(string)
		for _, name := range []string{ev.Type + " " + key, ev.Type + " " + strings.SplitN(key, ":", 2)[0]} {
			if seen, ok := want[name]; ok && !seen {
				want[name] = true
				missing--
			}
		}
	}
	stop()
	goleak.VerifyNone(t, baseline...)
}

// TestDemoRateIsBounded counts the commands Redis receives per demo step.
func TestDemoRateIsBounded(t *testing.T) {
	_, c := testkit.Redis(t)
	d := &demo{c: c, logger: slog.New(slog.DiscardHandler), tick: time.Millisecond, rng: demoRand()}
	before := testkit.InfoStat(t, c, "stats", "total_commands_processed")
	const steps = 500
	for range steps {
		d.once(context.Background())
	}
	if n := testkit.InfoStat(t, c, "stats", "total_commands_processed") - before - 1; n > 4*steps || n < steps {
		t.Fatalf("%d commands for %d steps, want between 1 and 4 a step", n, steps)
	}
	if len(d.sessions) > 20 || len(d.orders) > 4 {
		t.Fatalf("demo state grows: %d sessions, %d orders", len(d.sessions), len(d.orders))
	}
}
