package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// compareResult is one -mode bench run as -json writes it: a flat object,
// one field a line. Latencies and CPU costs are in microseconds, memory
// in KiB. A figure that could not be read is null, the reason in _error.
type compareResult struct {
	Server     string `json:"server"`
	Run        string `json:"run"`
	URL        string `json:"url"`
	Publish    string `json:"publish"`
	PublishURL string `json:"publish_url,omitempty"`
	Redis      string `json:"redis,omitempty"`
	PIDs       []int  `json:"pids"`
	Clients    int    `json:"clients"`
	Connected  int    `json:"connected"`
	// Streams the server refused (429, 503) and that were asked for again.
	ConnectRetries int64   `json:"connect_retries"`
	PayloadSize    int     `json:"payload_bytes"`
	EPSAsked       float64 `json:"eps_asked"`

	RSSBeforeKiB    *float64 `json:"rss_before_kib"`
	RSSAfterKiB     *float64 `json:"rss_after_kib"`
	RSSPerStreamKiB *float64 `json:"rss_per_stream_kib"`
	RSSError        string   `json:"rss_error,omitempty"`

	WarmupSeconds float64 `json:"warmup_seconds"`
	Sent          int     `json:"events_sent"`
	PublishErrors int     `json:"publish_errors"`
	SendSeconds   float64 `json:"send_seconds"`
	EPSAchieved   float64 `json:"eps_achieved"`
	WindowSeconds float64 `json:"window_seconds"`

	Expected         int64   `json:"deliveries_expected"`
	Delivered        int64   `json:"deliveries"`
	Lost             int64   `json:"lost"`
	Duplicates       int64   `json:"duplicates"`
	Foreign          int64   `json:"foreign"`
	Dropped          int     `json:"streams_dropped"`
	DeliveryRatio    float64 `json:"delivery_ratio"`
	DeliveriesPerSec float64 `json:"deliveries_per_second"`
	latencyFigures
	ServerCPUSeconds   *float64 `json:"server_cpu_seconds"`
	ServerCPUPerDeliv  *float64 `json:"server_cpu_us_per_delivery"`
	ServerCPUPercent   *float64 `json:"server_cpu_percent"`
	ServerCPUError     string   `json:"server_cpu_error,omitempty"`
	RedisCPUSeconds    *float64 `json:"redis_cpu_seconds"`
	RedisCPUPerEvent   *float64 `json:"redis_cpu_us_per_event"`
	RedisCPUError      string   `json:"redis_cpu_error,omitempty"`
	LoadToolCPUPercent *float64 `json:"sseload_cpu_percent"`
	OtherCPUPercent    *float64 `json:"other_cpu_percent"`
	LoadAvg            *float64 `json:"loadavg_1m"`
	CPUs               int      `json:"cpus"`
	OK                 bool     `json:"ok"`
}

// pidsCPU is the CPU time of every pid, summed.
func pidsCPU(pids []int) (time.Duration, error) {
	if len(pids) == 0 {
		return 0, errors.New("no -pids given")
	}
	var sum time.Duration
	for _, p := range pids {
		d, err := readProcCPU(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// pidsRSS is the VmRSS of every pid, summed, in KiB.
func pidsRSS(pids []int) (int64, error) {
	if len(pids) == 0 {
		return 0, errors.New("no -pids given")
	}
	var sum int64
	for _, p := range pids {
		k, err := readRSS(p)
		if err != nil {
			return 0, err
		}
		sum += k
	}
	return sum, nil
}

// benchReading is one reading of every CPU clock a run reports.
type benchReading struct {
	server, redis, self, machine             time.Duration
	serverErr, redisErr, selfErr, machineErr error
}

func readBenchClocks(ctx context.Context, pids []int, rdb rueidis.Client) benchReading {
	var r benchReading
	r.server, r.serverErr = pidsCPU(pids)
	if rdb != nil {
		r.redis, r.redisErr = readRedisCPU(ctx, rdb)
	} else {
		r.redisErr = errors.New("no -redis given")
	}
	r.self, r.selfErr = readProcCPU(os.Getpid())
	r.machine, r.machineErr = readMachineBusy()
	return r
}

// runBench is -mode bench: open the streams, read RSS, warm up, publish
// at a fixed rate, drain, and report.
func runCompare(ctx context.Context, cfg benchConfig, out, log io.Writer) error {
	for _, p := range cfg.PIDs {
		if _, err := readProcCPU(p); err != nil {
			return fmt.Errorf("-pids %d: %w", p, err)
		}
	}
	var rdb rueidis.Client
	if cfg.Redis != "" {
		var err error
		if rdb, err = dialRedis(cfg.Redis, cfg.target.db); err != nil {
			return err
		}
		defer rdb.Close()
	}
	res := compareResult{
		Server: cfg.Server, Run: cfg.Run, URL: cfg.URL, Publish: cfg.Publish, Redis: cfg.Redis,
		PIDs: cfg.PIDs, Clients: cfg.Clients, PayloadSize: cfg.Size, EPSAsked: cfg.EPS, CPUs: runtime.NumCPU(),
	}
	if cfg.Publish == publishHTTP {
		res.PublishURL = cfg.PublishURL
	}
	sink := &benchSink{marker: []byte(cfg.marker()), base: time.Now(), sentAt: make([]atomic.Int64, cfg.Events)}
	rssBefore, rssErr := pidsRSS(cfg.PIDs)

	fmt.Fprintf(log, "opening %d streams to %s at %g/s\n", cfg.Clients, cfg.URL, cfg.Rate)
	clients, errs, retries, took := openLeanAll(ctx, cfg, sink, log)
	res.ConnectRetries = retries
	defer func() { closeLean(clients) }()
	res.Connected = len(clients)
	failed := len(errs) > 0
	fmt.Fprintf(out, "%s %s: %d of %d streams connected in %.1fs (%d refusals asked again)\n", cfg.Server, cfg.Run, len(clients), cfg.Clients, took.Seconds(), retries)
	if failed {
		fmt.Fprintf(out, "%d streams failed:%s\n", len(errs), errorSummary(errs))
	}
	if len(clients) == 0 || ctx.Err() != nil {
		return interrupted(ctx, out)
	}
	if !sleepCtx(ctx, cfg.Settle) {
		return interrupted(ctx, out)
	}
	if rssErr == nil {
		var after int64
		if after, rssErr = pidsRSS(cfg.PIDs); rssErr == nil {
			res.RSSBeforeKiB, res.RSSAfterKiB = ptr(float64(rssBefore)), ptr(float64(after))
			res.RSSPerStreamKiB = ptr(float64(after-rssBefore) / float64(len(clients)))
			fmt.Fprintf(out, "RSS %d -> %d KiB: %.2f KiB per stream\n", rssBefore, after, *res.RSSPerStreamKiB)
		}
	}
	if rssErr != nil {
		res.RSSError = rssErr.Error()
	}

	if cfg.Events > 0 {
		pub := newPublisher(cfg, rdb)
		defer pub.close()
		warmStart := time.Now()
		warmErr := warmUp(ctx, cfg, pub, sink, len(clients))
		if warmErr != nil {
			fmt.Fprintln(out, "warm-up:", warmErr)
			failed = true
		}
		res.WarmupSeconds = time.Since(warmStart).Seconds()
		if warmErr == nil {
			before := readBenchClocks(ctx, cfg.PIDs, rdb)
			start := time.Now()
			res.Sent, res.PublishErrors, took = publishAll(ctx, cfg, pub, sink, len(clients), log)
			res.Expected = int64(res.Sent) * int64(len(clients))
			drainSink(ctx, sink, res.Expected, cfg.Drain)
			window := time.Since(start)
			res.setCosts(readBenchClocks(ctx, cfg.PIDs, rdb), before, window)
			res.SendSeconds, res.WindowSeconds = took.Seconds(), window.Seconds()
			res.EPSAchieved = float64(res.Sent) / took.Seconds()
		}
	}
	for _, c := range clients {
		if c.dropped() {
			res.Dropped++
		}
	}
	closeLean(clients)
	clients = nil
	res.Delivered, res.Duplicates, res.Foreign = sink.total.Load(), sink.dups.Load(), sink.foreign.Load()
	res.Lost = max(res.Expected-res.Delivered, 0)
	res.DeliveryRatio = float64(res.Delivered) / float64(max(res.Expected, 1))
	if res.Expected == 0 {
		res.DeliveryRatio = 0
	}
	if res.WindowSeconds > 0 {
		res.DeliveriesPerSec = float64(res.Delivered) / res.WindowSeconds
		if res.ServerCPUSeconds != nil {
			res.ServerCPUPerDeliv = ptr(perUnit(time.Duration(*res.ServerCPUSeconds*float64(time.Second)), res.Delivered))
		}
	}
	res.setLatency(&sink.latency)
	if cfg.Events > 0 {
		res.report(out)
	}
	failed = failed || res.Lost > 0 || res.Dropped > 0 || res.PublishErrors > 0 || ctx.Err() != nil
	res.OK = !failed
	if cfg.JSON != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.JSON, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
	}
	if failed {
		if ctx.Err() != nil {
			return interrupted(ctx, out)
		}
		return errFailed
	}
	return nil
}

// setCosts fills the CPU fields from two readings over window.
func (r *compareResult) setCosts(after, before benchReading, window time.Duration) {
	pct := func(d time.Duration) *float64 { return ptr(100 * d.Seconds() / window.Seconds()) }
	server, redis, self := after.server-before.server, after.redis-before.redis, after.self-before.self
	if err := cmp.Or(before.serverErr, after.serverErr); err != nil {
		r.ServerCPUError = err.Error()
	} else {
		r.ServerCPUSeconds, r.ServerCPUPercent = ptr(server.Seconds()), pct(server)
	}
	if err := cmp.Or(before.redisErr, after.redisErr); err != nil {
		r.RedisCPUError = err.Error()
	} else {
		r.RedisCPUSeconds = ptr(redis.Seconds())
		r.RedisCPUPerEvent = ptr(perUnit(redis, int64(r.Sent)))
	}
	selfOK := before.selfErr == nil && after.selfErr == nil
	if selfOK {
		r.LoadToolCPUPercent = pct(self)
	}
	if selfOK && r.ServerCPUSeconds != nil && before.machineErr == nil && after.machineErr == nil {
		other := after.machine - before.machine - self - server
		if r.RedisCPUSeconds != nil {
			other -= redis
		}
		r.OtherCPUPercent = pct(max(other, 0))
	}
	if l, err := readLoadAvg(); err == nil {
		r.LoadAvg = ptr(l)
	}
}

// report prints the run's figures.
func (r *compareResult) report(out io.Writer) {
	fmt.Fprintf(out, "published %d in %.2fs (%.0f/s, asked %g/s), %d errors; delivered %d of %d (ratio %.4f, %.0f/s), lost %d, duplicates %d, foreign %d, dropped %d\n",
		r.Sent, r.SendSeconds, r.EPSAchieved, r.EPSAsked, r.PublishErrors, r.Delivered, r.Expected, r.DeliveryRatio,
		r.DeliveriesPerSec, r.Lost, r.Duplicates, r.Foreign, r.Dropped)
	fmt.Fprintf(out, "latency publish->client: p50 %.0f us  p90 %.0f us  p99 %.0f us  max %.0f us\n",
		r.LatencyP50, r.LatencyP90, r.LatencyP99, r.LatencyMax)
	fmt.Fprintf(out, "CPU over %.1fs: server %s us per delivery (%s of one core)%s; Redis %s us per event; sseload %s, other %s, load %s on %d CPUs\n",
		r.WindowSeconds, numOf(r.ServerCPUPerDeliv, 2), pctOf(r.ServerCPUPercent), errNote(r.ServerCPUError),
		numOf(r.RedisCPUPerEvent, 2), pctOf(r.LoadToolCPUPercent), pctOf(r.OtherCPUPercent), numOf(r.LoadAvg, 2), r.CPUs)
}

func errNote(s string) string {
	if s == "" {
		return ""
	}
	return " [" + s + "]"
}

// warmUp publishes warm-up events, one every 50 ms, until every client
// has had one: only then is each server's subscription surely live.
func warmUp(ctx context.Context, cfg benchConfig, pub publisher, sink *benchSink, clients int) error {
	deadline := time.Now().Add(cfg.Warmup)
	for n := 0; sink.warmed.Load() < int64(clients); n++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d streams had a warm-up event within %s", sink.warmed.Load(), clients, cfg.Warmup)
		}
		if err := pub.send(ctx, n, true); err != nil {
			return err
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// publishAll sends cfg.Events payloads on a fixed schedule (seq/eps after
// the start), up to -inflight at once: a server whose publish call returns
// only once its fan-out is done (Nchan's) must not slow the schedule down.
// The send time is stored before the publish, so latency includes the
// whole publish round. A schedule that slips anyway shows in eps_achieved.
func publishAll(ctx context.Context, cfg benchConfig, pub publisher, sink *benchSink, clients int, log io.Writer) (sent, errs int, took time.Duration) {
	var nSent, nErrs atomic.Int64
	took = paced(ctx, cfg.Events, time.Duration(float64(time.Second)/cfg.EPS), cfg.InFlight, func(seq int) {
		sink.sentAt[seq].Store(int64(time.Since(sink.base)) + 1)
		if err := pub.send(ctx, seq, false); err != nil {
			if nErrs.Add(1) == 1 {
				fmt.Fprintln(log, "publish failed:", err)
			}
			sink.sentAt[seq].Store(0)
			return
		}
		nSent.Add(1)
	}, func(elapsed time.Duration) {
		fmt.Fprintf(log, "  %5.1fs  sent %d, delivered %d of %d\n", elapsed.Seconds(), nSent.Load(), sink.total.Load(), nSent.Load()*int64(clients))
	})
	return int(nSent.Load()), int(nErrs.Load()), took
}

// drainSink waits until every expected delivery arrived, or none has for
// quiet, or ctx ends.
func drainSink(ctx context.Context, s *benchSink, expected int64, quiet time.Duration) {
	last, lastChange := s.total.Load(), time.Now()
	for last < expected && time.Since(lastChange) < quiet {
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return
		}
		if now := s.total.Load(); now != last {
			last, lastChange = now, time.Now()
		}
	}
}
