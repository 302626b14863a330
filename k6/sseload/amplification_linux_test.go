package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/redis/redisserver"
)

// amplificationConfig is a small amplification run against k.
func amplificationConfig(t *testing.T, k keyfluxProc, args ...string) config {
	t.Helper()
	var errs bytes.Buffer
	args = append([]string{"-mode", "amplification", "-redis", k.redis, "-timeout", "2m",
		"-bench-requests", "2000"}, args...)
	cfg, err := parseConfig(args, &errs)
	if err != nil {
		t.Fatalf("flags %q: %v\n%s", args, err, errs.String())
	}
	return cfg
}

var numpatLine = regexp.MustCompile(`Redis PUBSUB NUMPAT +(\d+) -> (\d+)\n`)

// TestAmplificationLeavesWhatRedisHolds opens 100 streams with distinct
// patterns one or two at a time, each closed after "connected", against a
// server whose per-address limits let them all through. Every open must
// be counted as connected, the PUBSUB NUMPAT the run reports must be what
// Redis says after it (the topics linger for 30 s, longer than the test),
// and the three SET measurements must all have run.
func TestAmplificationLeavesWhatRedisHolds(t *testing.T) {
	k := startKeyflux(t, "--stream-rate-per-ip", "10000", "--stream-burst-per-ip", "10000")
	cfg := amplificationConfig(t, k, "-opens", "100",
		"-url", k.base+"/streams/keyspace?pattern=amp:{n}:*")
	var out, log bytes.Buffer
	if err := runAmplification(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("runAmplification: %v\n%s\n%s", err, out.String(), log.String())
	}
	got := out.String()
	if !strings.Contains(got, "connected 100, refused 0, failed 0\n") {
		t.Errorf("output lacks all 100 connected:\n%s", got)
	}
	m := numpatLine.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("output lacks the PUBSUB NUMPAT line:\n%s", got)
	}
	rdb, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{k.redis}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	now, err := rdb.Do(context.Background(), rdb.B().PubsubNumpat().Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if m[2] != strconv.FormatInt(now, 10) {
		t.Errorf("run reported PUBSUB NUMPAT %s after the opens, Redis says %d:\n%s", m[2], now, got)
	}
	for _, label := range []string{"private redis-server, no Keyflux", "Keyflux's Redis, before the opens", "Keyflux's Redis, after the opens"} {
		if !regexp.MustCompile(regexp.QuoteMeta(label) + ` +[1-9]\d* SET/s  p50 .*`).MatchString(got) {
			t.Errorf("output lacks a SET/s figure for %q:\n%s", label, got)
		}
	}
	if n := len(regexp.MustCompile(`\(PUBSUB NUMPAT \d+ before, \d+ after\)`).FindAllString(got, -1)); n != 2 {
		t.Errorf("%d measurements of the server's Redis give PUBSUB NUMPAT around them, want 2:\n%s", n, got)
	}
}

// TestAmplificationCountsRefusals points every open at a request the
// server refuses (a filter that is not a boolean: 400): each is counted as
// refused by its status, none as failed, and the run itself succeeds,
// since a refusal is the server answering, not the tool failing.
func TestAmplificationCountsRefusals(t *testing.T) {
	k := startKeyflux(t)
	cfg := amplificationConfig(t, k, "-opens", "20", "-redis-benchmark", "",
		"-url", k.base+"/streams/keyspace?pattern=amp:*&filter=({n})")
	var out, log bytes.Buffer
	if err := runAmplification(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("runAmplification: %v\n%s\n%s", err, out.String(), log.String())
	}
	if want := "connected 0, refused 20 (400: 20), failed 0\n"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "SET throughput") {
		t.Errorf("-redis-benchmark \"\" still measured:\n%s", out.String())
	}
}

// TestBenchStoppedAtBenchTime runs redis-benchmark with far more SETs than
// fit in -bench-time: it must be stopped then, and the figure taken from
// its last progress line.
func TestBenchStoppedAtBenchTime(t *testing.T) {
	srv, err := redisserver.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	cfg := config{BenchTool: "redis-benchmark", BenchRequests: 100_000_000, BenchTime: 1500 * time.Millisecond}
	began := time.Now()
	b := runBench(context.Background(), cfg, srv.Addr(), "private", nil)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("runBench took %v with -bench-time %v", took, cfg.BenchTime)
	}
	if b.err != nil || !b.stopped || b.rps <= 0 || b.avg <= 0 {
		t.Errorf("runBench = %+v, want stopped with a rate and an average", b)
	}
	if !strings.Contains(b.String(), "stopped at -bench-time") {
		t.Errorf("report %q does not say it was stopped", b)
	}
}
