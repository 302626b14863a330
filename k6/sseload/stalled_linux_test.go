package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// fanoutConfig is a small fanout run against k, checked as the flags are.
func fanoutConfig(t *testing.T, k keyfluxProc, args ...string) config {
	t.Helper()
	var errs bytes.Buffer
	args = append([]string{"-mode", "fanout", "-redis", k.redis, "-clients", "2", "-timeout", "2m",
		"-url", k.base + "/streams/keyspace?pattern=load:*&events=set"}, args...)
	cfg, err := parseConfig(args, &errs)
	if err != nil {
		t.Fatalf("flags %q: %v\n%s", args, err, errs.String())
	}
	return cfg
}

// TestStalledStreamIsCutOff runs the measurement the tool exists for: one
// stream that never reads beside two that do, with frames big enough to
// outgrow the stalled stream's socket buffers (about 4 MiB on loopback) and
// the server's 2 MiB queue. The queue leaves the readers a second of
// slack, since CI runs this beside other race-enabled tests. The readers
// must get everything, and the stalled one must be found cut off and
// counted by the server. The write timeout is far longer than the run, so
// that the queue limit is what cuts the stalled stream off: on a loaded
// machine the writer's rate falls (941 SET/s instead of 2,000 once), the
// queue fills more slowly, and a 2 s write timeout came first, uncounted.
func TestStalledStreamIsCutOff(t *testing.T) {
	k := startKeyflux(t, "--queue-bytes", "2097152", "--write-timeout", "2m")
	cfg := fanoutConfig(t, k, "-stalled", "1", "-keysize", "1000", "-events", "10000", "-eps", "2000")
	var out, log bytes.Buffer
	if err := runFanout(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("runFanout: %v\n%s\n%s", err, out.String(), log.String())
	}
	for _, want := range []string{
		"delivered 20000 of 20000 (2 clients x 10000), lost 0",
		"stalled 1: cut off by the server",
		`keyflux_slow_consumers_total 1 ({policy="disconnect"} 1)`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestStalledStreamLeftOpen checks the other verdict: a run far too short
// to fill a stalled stream's buffers leaves it open, and the run fails,
// since the server did not (and need not) cut it off.
func TestStalledStreamLeftOpen(t *testing.T) {
	k := startKeyflux(t)
	cfg := fanoutConfig(t, k, "-stalled", "2", "-events", "10", "-eps", "100")
	var out, log bytes.Buffer
	err := runFanout(context.Background(), cfg, &out, &log)
	if !errors.Is(err, errFailed) {
		t.Fatalf("runFanout = %v, want errFailed\n%s", err, out.String())
	}
	for _, want := range []string{
		"delivered 20 of 20 (2 clients x 10), lost 0",
		"stalled 1: NOT cut off",
		"stalled 2: NOT cut off",
		"then still open",
		"keyflux_slow_consumers_total 0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
