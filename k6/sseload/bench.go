package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/redis/redisserver"
)

// benchResult is one redis-benchmark SET measurement.
type benchResult struct {
	label                    string
	rps                      float64
	avg, p50, p99, max       float64 // ms; only avg when it was stopped
	stopped                  bool    // at -bench-time, before its -n SETs were done
	patternsBefore, patterns string  // PUBSUB NUMPAT around it; "" for the private server
	err                      error
}

func (b benchResult) String() string {
	var s string
	switch {
	case b.err != nil:
		s = fmt.Sprintf("%-36s failed: %v", b.label, b.err)
	case b.stopped:
		s = fmt.Sprintf("%-36s %9.0f SET/s  avg %.3f ms  (stopped at -bench-time: its progress line; no percentiles)", b.label, b.rps, b.avg)
	default:
		s = fmt.Sprintf("%-36s %9.0f SET/s  p50 %.3f ms  p99 %.3f ms  max %.3f ms", b.label, b.rps, b.p50, b.p99, b.max)
	}
	if b.patterns != "" {
		s += fmt.Sprintf("  (PUBSUB NUMPAT %s before, %s after)", b.patternsBefore, b.patterns)
	}
	return s
}

// benchPrivate measures a redis-server of its own, which no Keyflux uses
// and nothing subscribes to: the figure the others are compared with,
// taken on the same machine in the same run. Its notify-keyspace-events
// are Keyflux's (KA), so the only difference is the subscribers.
func benchPrivate(ctx context.Context, cfg config) benchResult {
	label := "private redis-server, no Keyflux"
	srv, err := redisserver.Start(ctx, "--notify-keyspace-events", "KA")
	if err != nil {
		return benchResult{label: label, err: err}
	}
	defer srv.Stop()
	return runBench(ctx, cfg, srv.Addr(), label, nil)
}

// runBench runs redis-benchmark's SET test against addr, for at most
// -bench-time: a Redis slowed down by thousands of patterns may take many
// minutes for -n SETs, and then the last progress line (overall rate and
// average) is the figure. rdb, if set, is a client of the same Redis, for
// PUBSUB NUMPAT around the measurement: a server's lingering
// subscriptions may expire while it runs.
func runBench(ctx context.Context, cfg config, addr, label string, rdb rueidis.Client) (b benchResult) {
	b.label = label
	if rdb != nil {
		b.patternsBefore = numpat(ctx, rdb)
		defer func() { b.patterns = numpat(ctx, rdb) }()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.err = err
		return b
	}
	benchCtx, cancel := context.WithTimeout(ctx, cfg.BenchTime)
	defer cancel()
	cmd := exec.CommandContext(benchCtx, cfg.BenchTool, "-h", host, "-p", port,
		"-t", "set", "-n", strconv.Itoa(cfg.BenchRequests), "-c", "50")
	raw, err := cmd.Output()
	b.parse(string(raw))
	switch {
	case benchCtx.Err() != nil && b.rps > 0:
		b.stopped = true
	case err != nil:
		b.err = fmt.Errorf("%s: %w", cfg.BenchTool, err)
	case b.rps == 0:
		b.err = errors.New("no throughput summary in its output: " + strings.TrimSpace(raw1k(raw)))
	}
	return b
}

// parse reads redis-benchmark 7's output: progress lines ended by \r
// ("SET: rps=1234.0 (overall: 1200.5) avg_msec=40.1 (overall: 41.0)"), and
// at the end "throughput summary: N requests per second" and a latency
// summary row (avg min p50 p95 p99 max, in ms). Without the summary the
// last progress line's overall figures are kept.
func (b *benchResult) parse(raw string) {
	lines := strings.FieldsFunc(raw, func(r rune) bool { return r == '\r' || r == '\n' })
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "SET: rps="); ok {
			var now, overall, avg, avgOverall float64
			if _, err := fmt.Sscanf(rest, "%g (overall: %g) avg_msec=%g (overall: %g)", &now, &overall, &avg, &avgOverall); err == nil {
				b.rps, b.avg = overall, avgOverall
			}
		}
		if rest, ok := strings.CutPrefix(line, "throughput summary: "); ok {
			if _, err := fmt.Sscanf(rest, "%g requests per second", &b.rps); err != nil {
				b.rps = 0
			}
		}
		if strings.HasPrefix(line, "avg ") && i+1 < len(lines) {
			var min, p95 float64
			_, _ = fmt.Sscan(lines[i+1], &b.avg, &min, &b.p50, &p95, &b.p99, &b.max)
		}
	}
}

// raw1k is the start of a tool's output, for an error message.
func raw1k(raw []byte) string { return string(raw[:min(len(raw), 1024)]) }
