package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// escapedCounter is patternCounter as url.Parse leaves it in a path.
const escapedCounter = "%7Bn%7D"

// runAmplification is finding 3 of issue 10 as a hostile client runs it:
// open a stream whose topic no other stream has ({n} in -url), wait for
// "connected" (the server's Redis subscription is live), close, and again,
// -opens times with at most -parallel open at once. Each closed stream
// leaves its topic lingering (--linger), and with it, on a server without
// limits, one PSUBSCRIBE in Redis, which then matches every keyspace
// notification against every pattern on its main thread. The run reports
// what the server accepted and refused, what it holds at the end (Redis's
// PUBSUB NUMPAT, topics, goroutines, RSS), and Redis SET throughput with
// redis-benchmark: against a private redis-server no Keyflux uses, and
// against the server's Redis before and after the opens.
func runAmplification(ctx context.Context, cfg config, out, log io.Writer) error {
	t := cfg.target
	rdb, err := dialRedis(cfg.Redis, 0)
	if err != nil {
		return err
	}
	defer rdb.Close()
	before, err := scrapeMetrics(ctx, t.metricsURL)
	if err != nil {
		return err
	}
	patternsBefore := numpat(ctx, rdb)

	var benches []benchResult
	if cfg.BenchTool != "" {
		fmt.Fprintf(log, "measuring SET throughput: a private redis-server, then %s\n", cfg.Redis)
		benches = append(benches, benchPrivate(ctx, cfg), runBench(ctx, cfg, cfg.Redis, "Keyflux's Redis, before the opens", rdb))
	}

	fmt.Fprintf(log, "opening %d streams of http://%s%s, %d at a time\n", cfg.Opens, t.host, t.requestURI, cfg.Parallel)
	a := newTally()
	took := openEach(ctx, cfg, a, log)
	connected, refused, failed := a.counts()
	fmt.Fprintf(out, "mode amplification: %d opens of http://%s%s, %d at a time, in %.1fs (%.0f/s)\n",
		connected+refused+failed, t.host, t.requestURI, cfg.Parallel, took.Seconds(), float64(connected+refused+failed)/took.Seconds())
	fmt.Fprintf(out, "connected %d, refused %d%s, failed %d\n", connected, refused, byStatus(a.refused), failed)
	if connected > 0 {
		h := &a.took
		fmt.Fprintf(out, "open, \"connected\", close: p50 %v  p99 %v  max %v\n", us(h.quantile(0.5)), us(h.quantile(0.99)), us(h.maxLatency()))
	}
	if failed > 0 {
		fmt.Fprintf(out, "%d opens failed:%s\n", failed, errorSummary(a.errs))
	}

	ok := failed == 0
	after, err := scrapeMetrics(ctx, t.metricsURL)
	if err != nil {
		ok = false
		fmt.Fprintln(out, "server metrics unavailable at the end (has the server exited?):", err)
	}
	fmt.Fprintln(out, "at the end, before -> after the opens:")
	fmt.Fprintf(out, "  Redis PUBSUB NUMPAT             %s -> %s\n", patternsBefore, numpat(ctx, rdb))
	for _, name := range []string{metricTopics, metricUpstream, metricGoroutines, metricClients} {
		fmt.Fprintf(out, "  %-31s %s -> %s\n", name, sample(before, name, 1), sample(after, name, 1))
	}
	fmt.Fprintf(out, "  %-31s %s -> %s\n", "server RSS", sample(before, metricRSS, 1<<20), sample(after, metricRSS, 1<<20))

	if cfg.BenchTool != "" {
		benches = append(benches, runBench(ctx, cfg, cfg.Redis, "Keyflux's Redis, after the opens", rdb))
		fmt.Fprintf(out, "SET throughput (%s -t set -n %d -c 50, at most %s each):\n", cfg.BenchTool, cfg.BenchRequests, cfg.BenchTime)
		for _, b := range benches {
			fmt.Fprintf(out, "  %s\n", b)
			ok = ok && b.err == nil
		}
	}
	if ctx.Err() != nil {
		return interrupted(ctx, out)
	}
	if !ok {
		return errFailed
	}
	return nil
}

// openEach runs the opens on cfg.Parallel workers and reports progress
// every second; it returns how long they took.
func openEach(ctx context.Context, cfg config, a *tally, log io.Writer) time.Duration {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Parallel {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= cfg.Opens {
					return
				}
				began := time.Now()
				err := openAndClose(ctx, cfg, n)
				a.record(time.Since(began), err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return time.Since(start)
		case <-tick.C:
			c, r, f := a.counts()
			fmt.Fprintf(log, "  %5.1fs  %d connected, %d refused, %d failed, of %d\n", time.Since(start).Seconds(), c, r, f, cfg.Opens)
		}
	}
}

// openAndClose opens stream n, waits for its "connected" event and closes
// it, as a client that leaves at once does.
func openAndClose(ctx context.Context, cfg config, n int) error {
	t := cfg.target
	t.requestURI = counted(t.requestURI, n)
	s, err := openStalled(ctx, t, cfg.ConnectTimeout)
	if err != nil {
		return err
	}
	s.close()
	return nil
}

// counted is requestURI with {n}, escaped or not, replaced by n.
func counted(requestURI string, n int) string {
	num := strconv.Itoa(n)
	return strings.ReplaceAll(strings.ReplaceAll(requestURI, patternCounter, num), escapedCounter, num)
}

// numpat is Redis's count of pattern subscriptions, over all clients.
func numpat(ctx context.Context, rdb rueidis.Client) string {
	n, err := rdb.Do(ctx, rdb.B().PubsubNumpat().Build()).AsInt64()
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strconv.FormatInt(n, 10)
}

// sample formats metric name of m in units of unit, or "?" without it.
func sample(m serverMetrics, name string, unit float64) string {
	v, ok := m[name]
	switch {
	case !ok:
		return "?"
	case unit == 1<<20:
		return strconv.FormatFloat(v/unit, 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// byStatus lists refusals by status, such as " (429: 19900, 503: 3)".
func byStatus(refused map[int]int) string {
	if len(refused) == 0 {
		return ""
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(refused)) {
		parts = append(parts, fmt.Sprintf("%d: %d", code, refused[code]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
