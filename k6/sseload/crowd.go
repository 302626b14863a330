package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// crowdReturn is how close to its start RSS the server must come back once
// the crowd is gone (issue 10: within 50 MB, within 30 s).
const crowdReturn = 50 << 20

// crowdWriter is what a stalled-crowd run writes so that every event on
// -url is -size bytes: a PUBLISH payload of that size for
// /streams/channels/<channel>, or, for /streams/keyspace?pattern=<prefix>*,
// a SET of a key padded to that size (a keyspace event carries the key).
type crowdWriter struct {
	channel string   // PUBLISH to it, if set
	keys    keyNames // else SET these
	size    int
}

func newCrowdWriter(t target, size int) (crowdWriter, error) {
	path, _, _ := strings.Cut(t.requestURI, "?")
	if rest, ok := strings.CutPrefix(path, "/streams/channels/"); ok && rest != "" {
		ch, err := url.PathUnescape(rest)
		if err != nil {
			return crowdWriter{}, fmt.Errorf("-url: channel %q: %w", rest, err)
		}
		return crowdWriter{channel: ch, size: size}, nil
	}
	if path == "/streams/keyspace" {
		if err := checkFanoutQuery(t); err != nil {
			return crowdWriter{}, err
		}
		prefix, _ := t.keyPrefix()
		return crowdWriter{keys: newKeyNames(prefix, size), size: size}, nil
	}
	return crowdWriter{}, errors.New("-mode stalled-crowd: -url must be /streams/channels/<channel> or /streams/keyspace?pattern=<prefix>*")
}

// command is event seq.
func (w crowdWriter) command(rdb rueidis.Client, seq int) rueidis.Completed {
	if w.channel == "" {
		return rdb.B().Set().Key(w.keys.key(seq)).Value("1").ExSeconds(int64(keyTTL / time.Second)).Build()
	}
	payload := strconv.Itoa(seq)
	if pad := w.size - len(payload); pad > 0 {
		payload += strings.Repeat(".", pad)
	}
	return rdb.B().Publish().Channel(w.channel).Message(payload).Build()
}

// rssSample is one reading of the server's /metrics.
type rssSample struct {
	at      time.Duration // since the run began
	phase   string
	rss     float64 // bytes
	clients float64
	slow    float64
	err     error
}

// rssLog reads the server's RSS every -sample until stopped; the run reads
// the samples afterwards, so the readings never race with the report.
type rssLog struct {
	mu      sync.Mutex
	phase   string
	samples []rssSample
}

func (l *rssLog) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func (l *rssLog) read(ctx context.Context, metricsURL string, start time.Time, log io.Writer) rssSample {
	m, err := scrapeMetrics(ctx, metricsURL)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := rssSample{at: time.Since(start), phase: l.phase, err: err}
	if err == nil {
		s.rss, s.clients, s.slow = m[metricRSS], m[metricClients], m[metricSlow]
	}
	l.samples = append(l.samples, s)
	fmt.Fprintln(log, " ", s)
	return s
}

func (s rssSample) String() string {
	if s.err != nil {
		return fmt.Sprintf("%6.1fs  %-8s  server unreachable: %v", s.at.Seconds(), s.phase, s.err)
	}
	return fmt.Sprintf("%6.1fs  %-8s  RSS %8.1f MiB  clients %5.0f  slow consumers %5.0f", s.at.Seconds(), s.phase, s.rss/(1<<20), s.clients, s.slow)
}

// follow samples every interval until stop is closed or ctx ends. A
// reading under way when stop closes completes: it is not a failure.
func (l *rssLog) follow(ctx context.Context, stop <-chan struct{}, metricsURL string, start time.Time, interval time.Duration, log io.Writer) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
			l.read(ctx, metricsURL, start, log)
		}
	}
}

// runStalledCrowd is finding 7 of issue 10: -stalled clients that read the
// response head and "connected" and then never again, while -eps events of
// -size bytes a second go to their stream for -duration. Every frame the
// server cannot write piles up in its memory, per client up to its
// --queue-bytes, across clients up to whatever bounds them all. The run
// follows the server's RSS (process_resident_memory_bytes from /metrics)
// every -sample from before the crowd arrives until -after once it has
// gone, and reports the start, the peak and the end.
func runStalledCrowd(ctx context.Context, cfg config, out, log io.Writer) error {
	t := cfg.target
	rdb, err := dialRedis(cfg.Redis, t.db)
	if err != nil {
		return err
	}
	defer rdb.Close()

	start := time.Now()
	rl := &rssLog{phase: "start"}
	first := rl.read(ctx, t.metricsURL, start, log)
	if first.err != nil {
		return first.err
	}
	stop, sampling := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	stopSampling := func() {
		stopOnce.Do(func() { close(stop) })
		<-sampling
	}
	go func() {
		defer close(sampling)
		rl.follow(ctx, stop, t.metricsURL, start, cfg.Sample, log)
	}()
	defer stopSampling()

	rl.setPhase("opening")
	crowd, errs := openStalledAll(ctx, cfg, cfg.Stalled, log)
	defer func() {
		for _, s := range crowd {
			s.close()
		}
	}()
	refused := map[int]int{}
	var failures []error
	for _, err := range errs {
		if code := refusedStatus(err); code != 0 {
			refused[code]++
		} else {
			failures = append(failures, err)
		}
	}
	fmt.Fprintf(out, "mode stalled-crowd: %d of %d stalled streams open on http://%s%s; refused %d%s, failed %d\n",
		len(crowd), cfg.Stalled, t.host, t.requestURI, len(errs)-len(failures), byStatus(refused), len(failures))
	if len(failures) > 0 {
		fmt.Fprintf(out, "%d streams failed:%s\n", len(failures), errorSummary(failures))
	}

	rl.setPhase("writing")
	fmt.Fprintf(log, "writing %g events/s of %d bytes for %s\n", cfg.EPS, cfg.Size, cfg.Duration)
	sent, writeErrs, took := writeCrowd(ctx, rdb, cfg)
	fmt.Fprintf(out, "wrote %d events of %d bytes in %.1fs (%.0f/s, asked %g/s), %d write errors\n",
		sent, cfg.Size, took.Seconds(), float64(sent)/took.Seconds(), cfg.EPS, writeErrs)

	beforeLeaving := rl.read(ctx, t.metricsURL, start, log)
	opened := len(crowd)
	for _, s := range crowd {
		s.close()
	}
	crowd = nil
	gone := time.Since(start)
	rl.setPhase("gone")
	sleepCtx(ctx, cfg.After)
	stopSampling()
	last := rl.read(ctx, t.metricsURL, start, log)

	return reportCrowd(ctx, cfg, out, rl.samples, first, beforeLeaving, last, gone, opened, len(failures) > 0 || writeErrs > 0)
}

// writeCrowd writes cfg.EPS events a second for cfg.Duration, in batches
// every 10 ms so that a 1,000/s rate needs no per-event timer.
func writeCrowd(ctx context.Context, rdb rueidis.Client, cfg config) (sent, errs int, took time.Duration) {
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		due := int(min(elapsed, cfg.Duration).Seconds() * cfg.EPS)
		var batch rueidis.Commands
		for seq := sent + errs; seq < due; seq++ {
			batch = append(batch, cfg.writer.command(rdb, seq))
		}
		for _, r := range rdb.DoMulti(ctx, batch...) {
			if r.Error() != nil {
				errs++
			} else {
				sent++
			}
		}
		if elapsed >= cfg.Duration {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	return sent, errs, time.Since(start)
}

// reportCrowd prints the RSS over time, the start, the peak and the end,
// and how many of the crowd the server had cut off before they left.
func reportCrowd(ctx context.Context, cfg config, out io.Writer, samples []rssSample, first, beforeLeaving, last rssSample, gone time.Duration, opened int, failed bool) error {
	fmt.Fprintln(out, "server RSS over time (process_resident_memory_bytes from /metrics):")
	peak := first
	unreachable := 0
	var back time.Duration = -1              // first time after the crowd left that RSS was within crowdReturn of the start
	var held, emptied time.Duration = -1, -1 // first readings with the crowd connected, and then with none of it
	for _, s := range samples {
		fmt.Fprintln(out, " ", s)
		if s.err != nil {
			unreachable++
			continue
		}
		if s.rss > peak.rss {
			peak = s
		}
		switch {
		case held < 0 && s.clients > first.clients:
			held = s.at
		case held >= 0 && emptied < 0 && s.clients <= first.clients:
			emptied = s.at
		}
		if back < 0 && s.at >= gone && s.rss <= first.rss+crowdReturn {
			back = s.at - gone
		}
	}
	mib := func(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MiB" }
	fmt.Fprintf(out, "RSS: start %s, peak %s at %.1fs, when the crowd left %s, %s after it left %s\n",
		mib(first.rss), mib(peak.rss), peak.at.Seconds(), mib(beforeLeaving.rss), cfg.After, mib(last.rss))
	if back >= 0 {
		fmt.Fprintf(out, "back within 50 MiB of the start %.1fs after the crowd left\n", back.Seconds())
	} else {
		fmt.Fprintf(out, "NOT back within 50 MiB of the start %s after the crowd left\n", cfg.After)
	}
	if beforeLeaving.err == nil {
		still := beforeLeaving.clients - first.clients
		fmt.Fprintf(out, "when the crowd left, %.0f of its %d streams were still connected (the server had cut off %.0f); slow consumers %.0f -> %.0f\n",
			still, opened, float64(opened)-still, first.slow, beforeLeaving.slow)
	}
	if emptied >= 0 {
		fmt.Fprintf(out, "the server held none of the crowd from %.1fs on (the crowd left at %.1fs)\n", emptied.Seconds(), gone.Seconds())
	}
	if unreachable > 0 {
		failed = true
		fmt.Fprintf(out, "the server did not answer %d of %d readings (has it exited?)\n", unreachable, len(samples))
	}
	if cfg.MaxRSS > 0 {
		limit := float64(cfg.MaxRSS << 20)
		if peak.rss > limit || back < 0 {
			failed = true
			fmt.Fprintf(out, "FAILED -max-rss %d MiB: peak %s, back within 50 MiB: %v\n", cfg.MaxRSS, mib(peak.rss), back >= 0)
		}
	}
	if ctx.Err() != nil {
		return interrupted(ctx, out)
	}
	if failed {
		return errFailed
	}
	return nil
}
