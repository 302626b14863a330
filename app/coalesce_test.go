package main

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// metric reads one unlabelled counter or gauge from /metrics.
func (k *keyflux) metric(name string) float64 {
	k.t.Helper()
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				k.t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	k.t.Fatalf("no %s in /metrics", name)
	return 0
}

// With --coalesce, the messages published within the window after a
// stream's last write (here its connected event) share its next write, in
// order.
func TestCoalesce(t *testing.T) {
	k := startKeyflux(t, nil, "--coalesce", "1s")
	s := k.open("/streams/channels/news")
	s.Expect("connected")
	testkit.Eventually(t, "a write to be counted", func() bool { return k.metric("keyflux_client_writes_total") >= 1 })
	// The head and connected went in one write or two, the second counted
	// just after the test read it, maybe after this.
	before := k.metric("keyflux_client_writes_total")
	for i := range 5 {
		k.do("PUBLISH", "news", `{"n":`+strconv.Itoa(i)+`}`)
	}
	for i := range 5 {
		if d := testkit.Data(t, s.Expect("message")); d["n"] != float64(i) {
			t.Fatalf("message %d: %v", i, d)
		}
	}
	testkit.Eventually(t, "the write to be counted", func() bool { return k.metric("keyflux_client_writes_total") > before })
	if n := k.metric("keyflux_client_writes_total") - before; n > 3 {
		t.Fatalf("%v writes for five messages within the window, want 1 (3 if the window ended amid the publishes and connected's write was counted late)", n)
	}
}

func TestCoalesceFlag(t *testing.T) {
	for _, bad := range []string{"-1ms", "2s"} {
		if _, err := parseConfig([]string{"--coalesce", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "coalesce") {
			t.Errorf("--coalesce %s: %v", bad, err)
		}
	}
	cfg, err := parseConfig([]string{"--coalesce", "2ms"}, io.Discard)
	if err != nil || cfg.Coalesce != 2*time.Millisecond {
		t.Fatalf("--coalesce 2ms: %v %v", cfg.Coalesce, err)
	}
}
