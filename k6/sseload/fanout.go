package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/tmaxmax/go-sse"
)

// keyTTL lets the keys a run writes expire by themselves, so repeated runs
// leave nothing behind in the Redis under test.
const keyTTL = 10 * time.Minute

// fanout is one fanout run's shared state. A keyspace notification carries
// the key but not its value, so the send time of every write is kept by
// sequence number and the sequence number is the last part of the key
// (<prefix><seq>, see keyNames): a client turns the key it receives back
// into the time its SET was sent. Times are offsets from base on the
// monotonic clock.
type fanout struct {
	keys     keyNames
	base     time.Time
	sentAt   []atomic.Int64 // per seq: offset from base in ns, plus 1; 0 = not sent
	received []atomic.Int64 // per client: events of this run delivered
	total    atomic.Int64   // sum of received
	foreign  atomic.Int64   // events under the prefix this run did not write
	resets   atomic.Int64   // "reset" events: the server says events were lost
	badData  atomic.Int64   // events whose data was not the expected JSON
	latency  histogram      // SET sent -> event parsed at the client
}

// handler is client i's event handler; it runs on the client's reader.
func (f *fanout) handler(i int) func(sse.Event) {
	return func(ev sse.Event) {
		now := time.Since(f.base)
		switch ev.Type {
		case "set":
		case "reset":
			f.resets.Add(1)
			return
		default:
			return
		}
		key, ok := eventKey(ev.Data)
		if !ok {
			f.badData.Add(1)
			return
		}
		seq, ok := f.keys.seq(key, len(f.sentAt))
		if !ok {
			f.foreign.Add(1)
			return
		}
		sent := f.sentAt[seq].Load()
		if sent == 0 {
			f.foreign.Add(1) // written by someone else before this run's SET
			return
		}
		f.latency.record(now - time.Duration(sent-1))
		f.received[i].Add(1)
		f.total.Add(1)
	}
}

// eventKey is the key of a keyspace event's data. Keyflux writes the key
// first, {"key":"...","event":...}, so a key without escapes is taken
// from there directly: at 200,000 deliveries a second, a full JSON decode
// was a quarter of this tool's CPU, which it shares with the server it
// measures. Anything else is decoded as JSON; ok is false when that fails.
func eventKey(data string) (key string, ok bool) {
	const head = `{"key":"`
	if rest, found := strings.CutPrefix(data, head); found && strings.HasSuffix(rest, "}") {
		if end := strings.IndexByte(rest, '"'); end >= 0 && !strings.Contains(rest[:end], `\`) {
			if tail := rest[end+1:]; tail == "}" || strings.HasPrefix(tail, ",") {
				return rest[:end], true
			}
		}
	}
	var v struct {
		Key *string `json:"key"`
	}
	if err := json.Unmarshal([]byte(data), &v); err != nil || v.Key == nil {
		return "", false
	}
	return *v.Key, true
}

// dialRedis connects to the -redis server, in database db, for the
// writes and reads a mode makes itself.
func dialRedis(addr string, db int) (rueidis.Client, error) {
	rdb, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:      []string{addr},
		SelectDB:         db,
		DisableCache:     true,
		ConnWriteTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("-redis %s: %w", addr, err)
	}
	return rdb, nil
}

// runFanout opens the stalled streams (-stalled) and the clients, writes
// the keys at the set rate, waits for deliveries to stop and reports how
// many arrived and how fast, what the writes and deliveries cost the
// server and its Redis in CPU, then whether the server cut the stalled
// streams off. With -json the figures also go to a file.
func runFanout(ctx context.Context, cfg config, out, log io.Writer) error {
	t := cfg.target
	prefix, _ := t.keyPrefix() // checked with the flags
	if cfg.PID > 0 {
		if _, err := readProcCPU(cfg.PID); err != nil {
			return fmt.Errorf("-pid %d: %w", cfg.PID, err)
		}
	}
	rdb, err := dialRedis(cfg.Redis, t.db)
	if err != nil {
		return err
	}
	defer rdb.Close()
	clock := cpuClock{pid: cfg.PID, metricsURL: t.metricsURL, rdb: rdb}

	f := &fanout{
		keys:     newKeyNames(prefix, cfg.KeySize),
		base:     time.Now(),
		sentAt:   make([]atomic.Int64, cfg.Events),
		received: make([]atomic.Int64, cfg.Clients),
	}
	failed := false
	stuck, stuckErrs := openStalledAll(ctx, cfg, cfg.Stalled, log)
	defer func() {
		for _, s := range stuck {
			s.close()
		}
	}()
	if len(stuckErrs) > 0 {
		failed = true
		fmt.Fprintf(out, "%d stalled streams failed to open:%s\n", len(stuckErrs), errorSummary(stuckErrs))
	}

	fmt.Fprintf(log, "opening %d streams to http://%s%s at %g/s\n", cfg.Clients, t.host, t.requestURI, cfg.Rate)
	r := openAll(ctx, cfg, f.handler, log)
	defer func() { closeAll(r.streams) }()
	n := len(r.streams)
	fmt.Fprintf(out, "mode fanout: %d of %d streams connected in %.1fs\n", n, cfg.Clients, r.took.Seconds())
	if len(r.errs) > 0 {
		failed = true
		fmt.Fprintf(out, "%d streams failed:%s\n", len(r.errs), errorSummary(r.errs))
	}
	if n == 0 || ctx.Err() != nil {
		return interrupted(ctx, out)
	}

	// The server's counters and both CPU clocks are read once the streams
	// are up, so the ramp's cost is not charged to the deliveries.
	before, err := scrapeMetrics(ctx, t.metricsURL)
	if err != nil {
		fmt.Fprintln(log, "server metrics unavailable, reporting without them:", err)
	}
	var idle cpuCost
	var idleTook time.Duration
	if cfg.Baseline > 0 {
		fmt.Fprintf(log, "measuring idle CPU for %s: every stream open, nothing written\n", cfg.Baseline)
		idleStart, idleBefore := time.Now(), clock.read(ctx)
		if !sleepCtx(ctx, cfg.Baseline) {
			return interrupted(ctx, out)
		}
		idle, idleTook = clock.read(ctx).since(idleBefore), time.Since(idleStart)
	}
	fmt.Fprintf(log, "writing %d keys %s<seq> (%d bytes each) to %s at %g/s\n", cfg.Events, prefix, len(f.keys.key(cfg.Events-1)), cfg.Redis, cfg.EPS)
	cpuBefore := clock.read(ctx)
	writeStart := time.Now()
	sent, writeErrs, sendTook := f.write(ctx, rdb, cfg, n, log)
	expected := int64(n) * int64(sent)
	f.drain(ctx, expected, cfg.Drain)
	busy := time.Since(writeStart)
	cost := clock.read(ctx).since(cpuBefore)
	var after serverMetrics
	if before != nil {
		after, _ = scrapeMetrics(ctx, t.metricsURL)
	}

	dropped := 0
	for _, s := range r.streams {
		if s.dropped() {
			dropped++
		}
	}
	closeAll(r.streams) // every reader has returned: the counts are final
	r.streams = nil

	received := f.total.Load()
	res := fanoutResult{
		Mode: modeFanout, URL: "http://" + t.host + t.requestURI, Redis: cfg.Redis,
		Clients: cfg.Clients, Connected: n, Stalled: cfg.Stalled,
		EPSAsked: cfg.EPS, Sent: sent, WriteErrors: writeErrs,
		SendSeconds: sendTook.Seconds(), EPSAchieved: float64(sent) / sendTook.Seconds(),
		WindowSeconds: busy.Seconds(),
		Expected:      expected, Delivered: received,
		Lost: max(expected-received, 0), Duplicates: max(received-expected, 0),
		DeliveryRatio: float64(received) / float64(max(expected, 1)),
		Resets:        f.resets.Load(), Dropped: dropped, Foreign: f.foreign.Load(), BadData: f.badData.Load(),
	}
	res.setLatency(&f.latency)
	res.setCPU(cost, clock.source(), busy)
	if cfg.Baseline > 0 {
		res.setBaseline(idle, idleTook, cost, busy)
	}

	fmt.Fprintf(out, "sent %d SETs in %.2fs (%.0f/s, asked %g/s), %d write errors\n",
		sent, sendTook.Seconds(), res.EPSAchieved, cfg.EPS, writeErrs)
	fmt.Fprintf(out, "delivered %d of %d (%d clients x %d), lost %d (%.3f%%)",
		received, expected, n, sent, res.Lost, 100*float64(res.Lost)/float64(max(expected, 1)))
	if res.Duplicates > 0 {
		fmt.Fprintf(out, ", %d duplicates", res.Duplicates)
	}
	fmt.Fprintf(out, "; resets %d, streams dropped %d, foreign %d, bad data %d\n",
		res.Resets, dropped, res.Foreign, res.BadData)
	h := &f.latency
	fmt.Fprintf(out, "latency SET->client (%d samples): p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n",
		h.n.Load(), us(h.quantile(0.5)), us(h.quantile(0.9)), us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.maxLatency()))
	fmt.Fprint(out, res.costLine())
	if before != nil && after != nil {
		fmt.Fprintf(out, "server: frames out +%.0f, slow consumers +%.0f, upstream dropped +%.0f\n",
			after[metricFramesOut]-before[metricFramesOut], after[metricSlow]-before[metricSlow], after[metricDropped]-before[metricDropped])
	}
	if !reportStalled(ctx, out, stuck, t.metricsURL) {
		failed = true
	}
	failed = failed || res.Lost > 0 || dropped > 0 || writeErrs > 0 || ctx.Err() != nil
	res.OK = !failed
	if cfg.JSON != "" {
		if err := res.writeJSON(cfg.JSON); err != nil {
			return err
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

// write SETs cfg.Events keys on a fixed schedule (seq/eps after the start),
// so a slow write delays the ones behind it but not the overall rate. Each
// SET is awaited before the next, so the achieved rate shows when Redis or
// this machine cannot keep up. The send time is stored before the SET is
// issued: the measured latency includes the whole Redis round.
func (f *fanout) write(ctx context.Context, rdb rueidis.Client, cfg config, clients int, log io.Writer) (sent, errs int, took time.Duration) {
	interval := time.Duration(float64(time.Second) / cfg.EPS)
	start := time.Now()
	nextReport := start.Add(time.Second)
	for seq := 0; seq < cfg.Events; seq++ {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(seq)*interval))) {
			break
		}
		f.sentAt[seq].Store(int64(time.Since(f.base)) + 1)
		cmd := rdb.B().Set().Key(f.keys.key(seq)).Value(strconv.Itoa(seq)).ExSeconds(int64(keyTTL / time.Second)).Build()
		if err := rdb.Do(ctx, cmd).Error(); err != nil {
			if errs == 0 {
				fmt.Fprintln(log, "SET failed:", err)
			}
			errs++
			f.sentAt[seq].Store(0) // not counted as expected
			continue
		}
		sent++
		if now := time.Now(); now.After(nextReport) {
			nextReport = now.Add(time.Second)
			fmt.Fprintf(log, "  %5.1fs  sent %d, delivered %d of %d\n",
				now.Sub(start).Seconds(), sent, f.total.Load(), int64(sent)*int64(clients))
		}
	}
	return sent, errs, time.Since(start)
}

// drain waits until every expected delivery has arrived, or none has for
// quiet, or ctx ends.
func (f *fanout) drain(ctx context.Context, expected int64, quiet time.Duration) {
	last, lastChange := f.total.Load(), time.Now()
	for last < expected && time.Since(lastChange) < quiet {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return
		}
		if now := f.total.Load(); now != last {
			last, lastChange = now, time.Now()
		}
	}
}

// us rounds a latency for printing.
func us(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
