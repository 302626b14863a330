package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// runIdle measures what an idle stream costs the server: VmRSS before any
// stream and after all of them are open, divided by their number. Each
// stream has had its "connected" event, so the figure includes the topic
// membership and heartbeat timer, not just an accepted socket; the settle
// wait lets the server's allocations from the ramp reach a steady state.
// Holding the streams through at least one heartbeat interval (-hold longer
// than the server's --heartbeat) shows whether heartbeats change the figure.
func runIdle(ctx context.Context, cfg config, out, log io.Writer) error {
	t := cfg.target
	var rssBefore int64
	if cfg.PID > 0 {
		var err error
		if rssBefore, err = readRSS(cfg.PID); err != nil {
			return fmt.Errorf("-pid %d: %w", cfg.PID, err)
		}
	} else {
		fmt.Fprintln(log, "no -pid given: the server's RSS will not be measured")
	}
	before, err := scrapeMetrics(ctx, t.metricsURL)
	if err != nil {
		return err
	}

	fmt.Fprintf(log, "opening %d streams to http://%s%s at %g/s\n", cfg.Clients, t.host, t.requestURI, cfg.Rate)
	r := openAll(ctx, cfg, nil, log)
	defer closeAll(r.streams)
	n := len(r.streams)
	failed := false
	fmt.Fprintf(out, "mode idle: %d of %d streams connected in %.1fs\n", n, cfg.Clients, r.took.Seconds())
	if len(r.errs) > 0 {
		failed = true
		fmt.Fprintf(out, "%d streams failed:%s\n", len(r.errs), errorSummary(r.errs))
	}
	if n == 0 || ctx.Err() != nil {
		return interrupted(ctx, out)
	}
	allConnected := time.Now()
	if !sleepCtx(ctx, cfg.Settle) {
		return interrupted(ctx, out)
	}

	after, err := scrapeMetrics(ctx, t.metricsURL)
	if err != nil {
		return err
	}
	if !reportClients(out, before, after, n) {
		failed = true
	}
	if cfg.PID > 0 {
		rss, err := readRSS(cfg.PID)
		if err != nil {
			return fmt.Errorf("-pid %d: %w", cfg.PID, err)
		}
		fmt.Fprintf(out, "server VmRSS: before %s, after %s (settle %s)\n", kib(float64(rssBefore)), kib(float64(rss)), cfg.Settle)
		fmt.Fprintf(out, "RSS per idle stream: %.2f KiB  (= (%d - %d) KiB / %d streams)\n",
			float64(rss-rssBefore)/float64(n), rss, rssBefore, n)
	}
	reportRuntime(out, before, after, n)

	if !sleepCtx(ctx, cfg.Hold-time.Since(allConnected)) {
		return interrupted(ctx, out)
	}
	dropped := 0
	for _, s := range r.streams {
		if s.dropped() {
			dropped++
		}
	}
	fmt.Fprintf(out, "after holding %s: %d streams open, %d dropped by the server\n",
		time.Since(allConnected).Round(time.Second), n-dropped, dropped)
	if dropped > 0 {
		failed = true
	}
	if end, err := scrapeMetrics(ctx, t.metricsURL); err == nil {
		fmt.Fprintf(out, "  %s %g\n", metricClients, end[metricClients])
	}
	if cfg.PID > 0 {
		if rss, err := readRSS(cfg.PID); err == nil {
			fmt.Fprintf(out, "  server VmRSS %s, %.2f KiB per stream\n", kib(float64(rss)), float64(rss-rssBefore)/float64(n))
		}
	}
	if failed {
		return errFailed
	}
	return nil
}

// reportClients checks the server's own count: it must have grown by
// exactly the streams this run holds, or another client is skewing the
// per-stream figures (or streams were lost).
func reportClients(out io.Writer, before, after serverMetrics, n int) bool {
	b, a := before[metricClients], after[metricClients]
	verdict := "ok"
	ok := a-b == float64(n)
	if !ok {
		verdict = fmt.Sprintf("MISMATCH: grew by %g, want %d", a-b, n)
	}
	fmt.Fprintf(out, "server %s: before %g, after %g (%s)\n", metricClients, b, a, verdict)
	return ok
}

// reportRuntime shows where the memory went inside the server's Go
// runtime: heap in use and goroutines per stream.
func reportRuntime(out io.Writer, before, after serverMetrics, n int) {
	heap := (after[metricHeapInuse] - before[metricHeapInuse]) / 1024
	gr := after[metricGoroutines] - before[metricGoroutines]
	fmt.Fprintf(out, "server Go heap in use: +%s (%.2f KiB per stream); goroutines: %g -> %g (%+.3f per stream)\n",
		kib(heap), heap/float64(n), before[metricGoroutines], after[metricGoroutines], gr/float64(n))
}

// interrupted reports an early end and makes the run fail.
func interrupted(ctx context.Context, out io.Writer) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		fmt.Fprintln(out, "stopped early: -timeout reached")
	case ctx.Err() != nil:
		fmt.Fprintln(out, "stopped early: interrupted")
	}
	return errFailed
}

// sleepCtx waits for d, or less if ctx ends; it reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
