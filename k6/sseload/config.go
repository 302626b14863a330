package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	modeIdle          = "idle"
	modeFanout        = "fanout"
	modeAmplification = "amplification"
	modeStalledCrowd  = "stalled-crowd"
	modeConnect       = "connect"

	// maxClients stays under the 20,000 open files a process may have
	// here, leaving room for the Redis connection, /metrics and stdio.
	maxClients = 19_000
	// maxEvents bounds a fanout run; at the default rate it is 1000 s.
	maxEvents = 1_000_000
	// maxOpens bounds an amplification run.
	maxOpens = 1_000_000
	// maxEventSize keeps a crowd event well under go-sse's 64 KiB limit.
	maxEventSize = 16 << 10
)

// patternCounter is replaced by each open's number in an amplification
// run's -url, so that every stream asks for a topic of its own. url.Parse
// keeps it as is in the query and escapes it in the path.
const patternCounter = "{n}"

// modeURL is each mode's -url when none is given.
var modeURL = map[string]string{
	modeAmplification: "http://127.0.0.1:8080/streams/keyspace?pattern=amp:{n}:*",
	modeStalledCrowd:  "http://127.0.0.1:8080/streams/channels/crowd",
}

// config is one run, as the flags describe it.
type config struct {
	Mode           string
	URL            string
	Clients        int
	Rate           float64
	ConnectTimeout time.Duration
	Timeout        time.Duration

	// idle
	Hold   time.Duration
	Settle time.Duration
	PID    int // also fanout: whose CPU time is read from /proc

	// fanout
	Redis    string
	Events   int
	EPS      float64
	Drain    time.Duration
	Stalled  int           // extra streams that stop reading after "connected"
	KeySize  int           // bytes per key written, 0 = unpadded
	JSON     string        // file the figures are written to, as JSON; "" = none
	Baseline time.Duration // CPU measured with the streams open and nothing written, before the writes

	// amplification
	Opens         int           // streams opened and closed, one after another
	Parallel      int           // of them open at once
	BenchRequests int           // SETs redis-benchmark sends per measurement
	BenchTool     string        // redis-benchmark, or "" to skip the measurement
	BenchTime     time.Duration // longest one measurement may run

	// stalled-crowd (and -stalled, -redis, -eps)
	Size     int           // bytes per event written
	Duration time.Duration // how long the writer runs
	After    time.Duration // how long RSS is followed after the crowd is gone
	Sample   time.Duration // how often RSS is read
	MaxRSS   int           // MiB; > 0 makes the run fail above it

	// connect
	N           int    // streams to open, each closed after "connected"
	Concurrency int    // of them opening at once
	Path        string // request path and query, on -url's server
	Token       string // sent as Authorization: Bearer
	Cookie      string // name=value, sent as Cookie

	target target
	writer crowdWriter // stalled-crowd: what to write, from -url
}

// target is where the streams go, taken apart once from -url.
type target struct {
	addr       string // host:port to dial
	host       string // Host header
	requestURI string // path and query
	metricsURL string // the same server's /metrics
	pattern    string // the pattern query parameter ("*" if absent)
	events     string // the events query parameter ("" is every event)
	db         int    // the db query parameter, 0 if absent
	header     string // extra request header lines, each ending in CRLF (connect: credentials)
}

// keyPrefix is the literal part of a pattern such as load:*, under which
// fanout writes its keys; ok is false for any other kind of glob.
func (t target) keyPrefix() (prefix string, ok bool) {
	p, ok := strings.CutSuffix(t.pattern, "*")
	if !ok || strings.ContainsAny(p, `*?[]\`) {
		return "", false
	}
	return p, true
}

const usageText = `sseload: Keyflux's load tool. It opens many SSE streams to a Keyflux on
loopback and measures the server's memory per idle stream (-mode idle), the
write-to-delivery latency of keyspace events (-mode fanout), or what two
hostile crowds cost the server and its Redis (-mode amplification,
-mode stalled-crowd). It stops by itself: a fixed number of streams and
events, within -timeout.

Usage:
  sseload -mode idle   [-clients N] [-rate R] [-pid PID] [-hold D] [-settle D] [-url URL]
  sseload -mode fanout -redis HOST:PORT [-clients N] [-events E] [-eps R] [-url URL]
                       [-stalled S] [-keysize B] [-pid PID] [-baseline D] [-json FILE]
  sseload -mode amplification -redis HOST:PORT [-opens N] [-parallel C] [-url URL-with-{n}]
                       [-bench-requests N] [-bench-time D] [-redis-benchmark PATH]
  sseload -mode stalled-crowd -redis HOST:PORT [-stalled N] [-eps R] [-size S]
                       [-duration D] [-after D] [-sample D] [-max-rss MiB] [-url URL]
  sseload -mode connect [-n N] [-concurrency C] [-path PATH] [-token T] [-cookie NAME=VALUE] [-url URL]
  sseload -mode bench|floor-server|chart ...   any SSE server against the write(2) floor:
                       see 'sseload -mode bench -h'

Modes:
  idle    Read the server's VmRSS from /proc/PID/status (needs -pid), open
          -clients streams at -rate per second, wait until each has its
          "connected" event, settle, read VmRSS again and print
          (after-before)/clients in KiB, with keyflux_clients_connected from
          /metrics as proof that every stream is open. Then hold them until
          -hold has passed since the last one connected, report drops and
          VmRSS again, and close them. Use a freshly started server: one
          that has already held streams keeps that memory, and the
          difference then under-reads.
  fanout  Open -clients streams, then SET -events keys <prefix><seq> (prefix:
          the pattern of -url without its final '*') in the Redis at -redis at
          -eps per second, time every delivery at every client from just
          before its SET, and print received, lost and latency p50/p99/max,
          and what the writes and deliveries cost in CPU: the server's per
          delivery (from /proc/PID/stat with -pid, else its /metrics) and
          its Redis's per SET and keyspace event (INFO cpu), from the first
          SET until deliveries stop. -baseline D first measures both for D
          with every stream open and nothing written, and the cost is also
          given net of that idle rate. -json FILE writes the figures as one
          JSON object (k6/journal-overhead.sh compares two runs with it).
          With -stalled S it first opens S more streams that read up to
          "connected" and then never again (a frozen tab: the connection
          stays up, the window stays shut). After the run it drains each and
          reports whether the server cut it off (EOF or reset, or its final
          ": slow consumer" comment), with keyflux_slow_consumers_total. The
          stalled streams' frames must outgrow the socket buffers (a few MB
          on loopback) plus the server's --queue-bytes within the run: make
          the frames bigger with -keysize (e.g. 200) if they do not.
  amplification
          Open a stream with a topic of its own ({n} in -url is the open's
          number: pattern=amp:{n}:*), wait for "connected", close it; -opens
          times, -parallel at once. Print how many connected and how many
          were refused (by status), then, before and after: Redis's PUBSUB
          NUMPAT, the server's keyflux_streams_active, upstream
          subscriptions, goroutines and RSS. Then Redis SET throughput with
          redis-benchmark (-t set -n -bench-requests -c 50, each stopped
          after -bench-time): a private redis-server no Keyflux uses, and
          the server's Redis before and after the opens.
  stalled-crowd
          Open -stalled streams (default 2000) that read up to "connected"
          and never again, write -eps events a second of -size bytes to
          their stream for -duration (PUBLISH for /streams/channels/<ch>,
          SET of padded keys for /streams/keyspace?pattern=<prefix>*),
          close the crowd, and follow the server's RSS from /metrics every
          -sample until -after later: start, peak, end, and whether it came
          back within 50 MiB of the start. -max-rss makes that a verdict.
  connect Open -n streams, -concurrency at a time (1: one after another),
          each closed once its "connected" event arrives, and print the
          connect time per stream, from dial to "connected": mean, p50, p99,
          max. -path replaces the path and query of -url; -token is sent as
          Authorization: Bearer, -cookie as a Cookie header, so the same run
          measures a server with and without --auth.

Exit status: 0 the measurement completed cleanly; 1 it ran but a stream
failed to connect or dropped, events were lost, a stalled stream was not
cut off, a reading failed, or it was interrupted or timed out; 2 bad flags.
A stream the server refuses (429, 503, ...) is a result in the attack
modes, not a failure; the server not answering /metrics is one.

Flags:
`

const usageExamples = `
Examples (server started with 'ulimit -n 20000; keyflux --listen 127.0.0.1:18080 &'):
  sseload -mode idle -clients 10000 -rate 1000 -hold 60s -pid $(pgrep -n keyflux) \
    -url 'http://127.0.0.1:18080/streams/keyspace?pattern=load:*'
  sseload -mode fanout -clients 100 -events 10000 -eps 1000 -redis 127.0.0.1:6379 \
    -url 'http://127.0.0.1:18080/streams/keyspace?pattern=load:*&events=set'
  sseload -mode fanout -clients 100 -events 20000 -eps 1000 -stalled 1 -keysize 200 \
    -redis 127.0.0.1:6379 -url 'http://127.0.0.1:18080/streams/keyspace?pattern=load:*&events=set'
  sseload -mode amplification -redis 127.0.0.1:6379 \
    -url 'http://127.0.0.1:18080/streams/keyspace?pattern=amp:{n}:*'
  sseload -mode stalled-crowd -redis 127.0.0.1:6379 -url 'http://127.0.0.1:18080/streams/channels/crowd'
  sseload -mode connect -n 2000 -concurrency 1 -token "$TOKEN" \
    -url 'http://127.0.0.1:18080' -path '/streams/keyspace?pattern=sensor:*'
`

// parseConfig reads and checks the flags. It returns flag.ErrHelp for -h.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sseload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageExamples)
	}
	fs.StringVar(&c.Mode, "mode", modeIdle, "idle, fanout, amplification, stalled-crowd or connect")
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080/streams/keyspace?pattern=load:*", "stream URL (http, loopback host); amplification: "+
		modeURL[modeAmplification]+"; stalled-crowd: "+modeURL[modeStalledCrowd])
	fs.IntVar(&c.Clients, "clients", 1000, "concurrent streams to open (at most "+strconv.Itoa(maxClients)+")")
	fs.Float64Var(&c.Rate, "rate", 500, "streams opened per second while ramping up")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 10*time.Second, "time allowed for one stream to connect and receive its \"connected\" event")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "limit for the whole run")
	fs.DurationVar(&c.Hold, "hold", 30*time.Second, "idle: how long to keep the streams open once all are connected")
	fs.DurationVar(&c.Settle, "settle", 5*time.Second, "idle: wait after the last stream connects before reading VmRSS")
	fs.IntVar(&c.PID, "pid", 0, "idle: process id of the Keyflux server, whose VmRSS is read from /proc; fanout: whose CPU time is read from /proc (else from /metrics)")
	fs.StringVar(&c.Redis, "redis", "", "fanout: host:port of the Redis the server uses (loopback)")
	fs.IntVar(&c.Events, "events", 10_000, "fanout: keys to SET (at most "+strconv.Itoa(maxEvents)+")")
	fs.Float64Var(&c.EPS, "eps", 1000, "fanout: SETs per second")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "fanout: after the last SET, how long to wait without progress for deliveries")
	fs.IntVar(&c.Stalled, "stalled", 0, "fanout: extra streams, opened first, that stop reading after \"connected\"; the server must cut each off; stalled-crowd: the crowd (default 2000)")
	fs.StringVar(&c.JSON, "json", "", "fanout: also write the figures to this file as one JSON object (latency, delivery ratio, CPU per delivery and per event)")
	fs.DurationVar(&c.Baseline, "baseline", 0, "fanout: before writing, measure the CPU the server and its Redis use this long with every stream open and nothing written, and also report the writes' cost net of that idle rate (0: not measured)")
	fs.IntVar(&c.KeySize, "keysize", 0, "fanout: pad every key to this many bytes (seq zero-padded; at most "+strconv.Itoa(maxKeySize)+"), for bigger frames; 0 = no padding")
	fs.IntVar(&c.Opens, "opens", 20_000, "amplification: streams to open, each with its own topic ({n} in -url), wait for \"connected\" and close")
	fs.IntVar(&c.Parallel, "parallel", 2, "amplification: streams open at once")
	fs.IntVar(&c.BenchRequests, "bench-requests", 200_000, "amplification: SETs per redis-benchmark measurement")
	fs.StringVar(&c.BenchTool, "redis-benchmark", "redis-benchmark", "amplification: redis-benchmark to measure SET throughput with; empty skips it")
	fs.DurationVar(&c.BenchTime, "bench-time", time.Minute, "amplification: longest one measurement may run; a slower one is stopped and its last progress line reported")
	fs.IntVar(&c.Size, "size", 200, "stalled-crowd: bytes per event (the PUBLISH payload, or the key for a keyspace -url)")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "stalled-crowd: how long to write -eps events a second before the crowd leaves")
	fs.DurationVar(&c.After, "after", 30*time.Second, "stalled-crowd: how long to follow the server's RSS after the crowd is gone")
	fs.DurationVar(&c.Sample, "sample", time.Second, "stalled-crowd: how often to read the server's RSS from /metrics")
	fs.IntVar(&c.MaxRSS, "max-rss", 0, "stalled-crowd: MiB; if set, the run fails when the server's RSS peaks above it or is not back within 50 MiB of the start at the end")
	fs.IntVar(&c.N, "n", 1000, "connect: streams to open, each closed after its \"connected\" event")
	fs.IntVar(&c.Concurrency, "concurrency", 1, "connect: streams opening at once (1: one after another)")
	fs.StringVar(&c.Path, "path", "", "connect: request path and query (e.g. /streams/keyspace?pattern=load:*), replacing -url's")
	fs.StringVar(&c.Token, "token", "", "connect: token sent as Authorization: Bearer")
	fs.StringVar(&c.Cookie, "cookie", "", "connect: cookie sent with every request, as name=value")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if u, ok := modeURL[c.Mode]; ok && !given["url"] {
		c.URL = u
	}
	if c.Mode == modeStalledCrowd && !given["stalled"] {
		c.Stalled = 2000
	}
	return c, c.check()
}

// check validates the flags and resolves the target.
func (c *config) check() error {
	switch {
	case c.Mode != modeIdle && c.Mode != modeFanout && c.Mode != modeAmplification && c.Mode != modeStalledCrowd && c.Mode != modeConnect:
		return fmt.Errorf("-mode %q: want %s, %s, %s, %s or %s", c.Mode, modeIdle, modeFanout, modeAmplification, modeStalledCrowd, modeConnect)
	case c.Clients < 1 || c.Clients > maxClients:
		return fmt.Errorf("-clients %d: want 1 to %d", c.Clients, maxClients)
	case !(c.Rate > 0):
		return errors.New("-rate must be positive")
	case c.ConnectTimeout <= 0 || c.Timeout <= 0:
		return errors.New("-connect-timeout and -timeout must be positive")
	}
	t, err := parseTarget(c.URL)
	if err != nil {
		return err
	}
	c.target = t
	switch c.Mode {
	case modeAmplification:
		return c.checkAmplification()
	case modeStalledCrowd:
		return c.checkStalledCrowd()
	case modeConnect:
		return c.checkConnect()
	}
	if c.Mode == modeIdle {
		if c.Hold < 0 || c.Settle < 0 {
			return errors.New("-hold and -settle must not be negative")
		}
		if c.PID < 0 {
			return errors.New("-pid must be a process id")
		}
		return nil
	}
	switch {
	case c.Redis == "":
		return errors.New("-mode fanout needs -redis host:port (the Redis the server uses; its log names it)")
	case c.Events < 1 || c.Events > maxEvents:
		return fmt.Errorf("-events %d: want 1 to %d", c.Events, maxEvents)
	case !(c.EPS > 0):
		return errors.New("-eps must be positive")
	case c.Drain <= 0:
		return errors.New("-drain must be positive")
	case c.PID < 0:
		return errors.New("-pid must be a process id")
	case c.Baseline < 0:
		return errors.New("-baseline must not be negative")
	case c.Stalled < 0 || c.Clients+c.Stalled > maxClients:
		return fmt.Errorf("-stalled %d: want 0 to %d (-clients and -stalled together at most %d)", c.Stalled, maxClients-c.Clients, maxClients)
	}
	if err := checkLoopback("-redis", c.Redis); err != nil {
		return err
	}
	if err := checkFanoutQuery(c.target); err != nil {
		return err
	}
	prefix, _ := c.target.keyPrefix()
	if least := minKeySize(prefix, c.Events); c.KeySize != 0 && (c.KeySize < least || c.KeySize > maxKeySize) {
		return fmt.Errorf("-keysize %d: want 0 (no padding) or %d to %d for prefix %q and %d events", c.KeySize, least, maxKeySize, prefix, c.Events)
	}
	return nil
}

// checkAmplification validates the flags of -mode amplification.
func (c *config) checkAmplification() error {
	switch {
	case c.Redis == "":
		return errors.New("-mode amplification needs -redis host:port (the Redis the server uses; its log names it)")
	case !strings.Contains(c.target.requestURI, patternCounter) && !strings.Contains(c.target.requestURI, escapedCounter):
		return fmt.Errorf("-mode amplification: -url must hold %s, which each open replaces by its number (pattern=amp:%s:*)", patternCounter, patternCounter)
	case c.Opens < 1 || c.Opens > maxOpens:
		return fmt.Errorf("-opens %d: want 1 to %d", c.Opens, maxOpens)
	case c.Parallel < 1 || c.Parallel > maxClients:
		return fmt.Errorf("-parallel %d: want 1 to %d", c.Parallel, maxClients)
	case c.BenchRequests < 1 || c.BenchTime <= 0:
		return errors.New("-bench-requests and -bench-time must be positive")
	}
	return checkLoopback("-redis", c.Redis)
}

// checkStalledCrowd validates the flags of -mode stalled-crowd.
func (c *config) checkStalledCrowd() error {
	switch {
	case c.Redis == "":
		return errors.New("-mode stalled-crowd needs -redis host:port (the Redis the server uses; its log names it)")
	case c.Stalled < 1 || c.Stalled > maxClients:
		return fmt.Errorf("-stalled %d: want 1 to %d", c.Stalled, maxClients)
	case !(c.EPS > 0):
		return errors.New("-eps must be positive")
	case c.Size < 1 || c.Size > maxEventSize:
		return fmt.Errorf("-size %d: want 1 to %d", c.Size, maxEventSize)
	case c.Duration <= 0 || c.After < 0 || c.Sample <= 0:
		return errors.New("-duration and -sample must be positive, -after not negative")
	case c.MaxRSS < 0:
		return errors.New("-max-rss must not be negative")
	}
	if err := checkLoopback("-redis", c.Redis); err != nil {
		return err
	}
	w, err := newCrowdWriter(c.target, c.Size)
	if err != nil {
		return err
	}
	c.writer = w
	return nil
}

// streams is how many sockets the run holds open to the server.
func (c *config) streams() int {
	switch c.Mode {
	case modeAmplification:
		return c.Parallel
	case modeStalledCrowd:
		return c.Stalled
	case modeConnect:
		return c.Concurrency
	}
	return c.Clients + c.Stalled
}

// parseTarget takes -url apart. Only plain HTTP to a loopback address is
// accepted: this tool must never be pointed at someone else's server.
func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return target{}, fmt.Errorf("-url %q: want an http://host:port/path URL", raw)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if err := checkLoopback("-url", addr); err != nil {
		return target{}, err
	}
	t := target{
		addr:       addr,
		host:       u.Host,
		requestURI: u.RequestURI(),
		metricsURL: "http://" + u.Host + "/metrics",
	}
	q := u.Query()
	t.pattern, t.events = q.Get("pattern"), q.Get("events")
	if t.pattern == "" {
		t.pattern = "*"
	}
	if db := q.Get("db"); db != "" {
		if t.db, err = strconv.Atoi(db); err != nil || t.db < 0 {
			return target{}, fmt.Errorf("-url: db %q is not a database number", db)
		}
	}
	return t, nil
}

// checkFanoutQuery makes sure the stream will carry the SETs fanout writes.
func checkFanoutQuery(t target) error {
	if _, ok := t.keyPrefix(); !ok {
		return fmt.Errorf("-mode fanout: pattern %q must be a literal prefix followed by one '*', such as load:*", t.pattern)
	}
	if t.events == "" {
		return nil
	}
	for name := range strings.SplitSeq(t.events, ",") {
		if strings.TrimSpace(name) == "set" {
			return nil
		}
	}
	return fmt.Errorf("-mode fanout: events=%s does not include set, the event it writes", t.events)
}

// checkLoopback accepts host:port only when every address of host is a
// loopback address.
func checkLoopback(flagName, hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flagName, hostport, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flagName, hostport, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%s %q: %s is not a loopback address; sseload only loads a local server", flagName, hostport, ip.IP)
		}
	}
	return nil
}
