package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The modes that compare any SSE server with the write(2) floor (issue
// 15). They have flags of their own, parsed here, apart from the Keyflux-
// only modes of config.go.
const (
	modeBench       = "bench"
	modeFloorServer = "floor-server"
	modeChart       = "chart"
)

// Publisher kinds of -mode bench.
const (
	publishRedisPublish = "redis-publish" // PUBLISH <channel> <payload>
	publishRedisSet     = "redis-set"     // SET <prefix><seq>: a keyspace event
	publishHTTP         = "http"          // POST <publish-url> with the payload as body
)

// seqMarker precedes the sequence number in a published payload; the
// client finds it in the frame's data line whatever the server wraps it in.
// A 'w' after it marks a warm-up event.
const seqMarker = "sqn-"

// benchConfig is one -mode bench, floor-server or chart run.
type benchConfig struct {
	Mode       string
	URL        string
	Clients    int
	Rate       float64
	Events     int
	EPS        float64
	Publish    string
	PublishURL string
	InFlight   int    // publishes awaited at once
	Token      string // -publish-token: sent as Authorization: Bearer with every POST
	Redis      string
	Channel    string
	Prefix     string
	Size       int
	PIDs       []int
	Settle     time.Duration
	Drain      time.Duration
	Warmup     time.Duration
	Connect    time.Duration
	Timeout    time.Duration
	JSON       string
	Server     string        // the server's name in the results and the chart
	Run        string        // the run's name; default <clients>x<eps>
	Listen     string        // floor-server
	Batch      int           // floor-server: events a write carries
	BatchIdle  time.Duration // floor-server: when a batch short of Batch is written anyway
	In         []string
	Out        string // chart
	Title      string

	target  target
	publish target // -publish-url taken apart
}

// benchMode returns the mode named by args when it is one of this file's.
func benchMode(args []string) (string, bool) {
	for i, a := range args {
		v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "mode=")
		if !ok && (a == "-mode" || a == "--mode") && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			return v, v == modeBench || v == modeFloorServer || v == modeChart
		}
	}
	return "", false
}

// listFlag collects a comma-separated or repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

const benchUsage = `sseload -mode bench: fan-out cost of any SSE server (Keyflux, Nchan, the floor).

Usage:
  sseload -mode bench -url STREAM-URL -publish redis-publish|redis-set|http
          [-publish-url URL] [-redis HOST:PORT] [-channel CH] [-prefix P]
          [-clients N] [-rate R] [-events E] [-eps R] [-size B] [-pids P1,P2]
          [-settle D] [-drain D] [-json FILE] [-server NAME] [-run NAME]
  sseload -mode floor-server [-listen 127.0.0.1:0] [-batch N] [-batch-idle D]
  sseload -mode chart -in runs.json [-in more.json] -out chart.svg [-title T]

bench opens -clients raw-TCP SSE streams to -url (any server), measures the
RSS of -pids (summed: an nginx master and its workers) per stream after
-settle, then, unless -events is 0, publishes warm-up events until every
stream has one, then -events payloads at -eps a second, each carrying
"` + seqMarker + `<seq>" (redis-set: the key <prefix><seq>), and times every delivery
from just before its publish. It reports deliveries/s, delivery_ratio,
latency p50/p99, the CPU of -pids per delivery (/proc/<pid>/stat) and of
-redis per event (INFO cpu), and writes them with -json.

floor-server answers every GET with an SSE response head and every POST
/pub by writing "data: <body>\n\n" with one write(2) per stream from one
thread: what the kernel alone costs per delivery. It prints its URL. With
-batch N it writes N events at a time, in one write(2) per stream: the
least a server can spend, and the latency it must add, to carry N events a
write; a batch still short -batch-idle after its last event goes as it is.

chart draws the CPU per delivery of every run in the -in files (JSON
objects or arrays of them, as bench writes) as grouped bars, in SVG.

Flags:
`

// parseBenchConfig reads the flags of the modes above.
func parseBenchConfig(args []string, stderr io.Writer) (benchConfig, error) {
	var c benchConfig
	var pids, in listFlag
	fs := flag.NewFlagSet("sseload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	fs.StringVar(&c.Mode, "mode", modeBench, "bench, floor-server or chart")
	fs.StringVar(&c.URL, "url", "", "bench: stream URL (http, loopback)")
	fs.IntVar(&c.Clients, "clients", 100, "bench: streams (at most "+strconv.Itoa(maxClients)+")")
	fs.Float64Var(&c.Rate, "rate", 2000, "bench: streams opened per second")
	fs.IntVar(&c.Events, "events", 1000, "bench: events to publish (0: idle run, RSS only)")
	fs.Float64Var(&c.EPS, "eps", 100, "bench: events published per second")
	fs.StringVar(&c.Publish, "publish", publishHTTP, "bench: redis-publish, redis-set or http")
	fs.StringVar(&c.PublishURL, "publish-url", "", "bench, -publish http: URL each payload is POSTed to (Keyflux: http://HOST/api/channels/CH; Nchan: http://HOST/pub?id=CH; floor: http://HOST/pub)")
	fs.StringVar(&c.Token, "publish-token", "", "bench, -publish http: sent as Authorization: Bearer (Keyflux's --publish-token)")
	fs.StringVar(&c.Redis, "redis", "", "bench: Redis host:port (loopback) to publish through and whose CPU is read with INFO cpu")
	fs.StringVar(&c.Channel, "channel", "bench", "bench, -publish redis-publish: channel")
	fs.StringVar(&c.Prefix, "prefix", "bench:", "bench, -publish redis-set: key prefix (the stream's pattern is <prefix>*)")
	fs.IntVar(&c.InFlight, "inflight", 16, "bench: publishes in flight at once (one at a time falls behind a server whose publish returns after its fan-out)")
	fs.IntVar(&c.Size, "size", 100, "bench: payload bytes (padded)")
	fs.Var(&pids, "pids", "bench: server process ids, comma-separated or repeated, whose CPU and RSS are summed")
	fs.Var(&pids, "pid", "bench: same as -pids")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "bench: wait after the last stream connects before reading RSS")
	fs.DurationVar(&c.Drain, "drain", 3*time.Second, "bench: after the last publish, how long to wait without progress")
	fs.DurationVar(&c.Warmup, "warmup", 20*time.Second, "bench: longest wait for every stream's warm-up event")
	fs.DurationVar(&c.Connect, "connect-timeout", 10*time.Second, "bench: time for one stream's response head")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "limit for the whole run")
	fs.StringVar(&c.JSON, "json", "", "bench: write the figures to this file as one JSON object")
	fs.StringVar(&c.Server, "server", "server", "bench: the server's name in the results (keyflux, nchan, floor)")
	fs.StringVar(&c.Run, "run", "", "bench: the run's name in the results (default <clients>x<eps>)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:0", "floor-server: address to listen on (loopback)")
	fs.IntVar(&c.Batch, "batch", 1, "floor-server: events each write carries (1 to 64)")
	fs.DurationVar(&c.BatchIdle, "batch-idle", 100*time.Millisecond, "floor-server: a batch short of -batch this long after its last event is written as it is")
	fs.Var(&in, "in", "chart: JSON files of bench runs")
	fs.StringVar(&c.Out, "out", "", "chart: SVG file to write")
	fs.StringVar(&c.Title, "title", "Server CPU per delivered event", "chart: title")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.In = in
	for _, p := range pids {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("-pids: %q is not a process id", p)
		}
		c.PIDs = append(c.PIDs, n)
	}
	return c, c.check()
}

func (c *benchConfig) check() error {
	switch c.Mode {
	case modeFloorServer:
		switch {
		case c.Batch < 1 || c.Batch > 64:
			return fmt.Errorf("-batch %d: want 1 to 64", c.Batch)
		case c.BatchIdle <= 0:
			return fmt.Errorf("-batch-idle %v: want a positive duration", c.BatchIdle)
		}
		return checkLoopback("-listen", c.Listen)
	case modeChart:
		if len(c.In) == 0 || c.Out == "" {
			return errors.New("-mode chart needs -in FILE and -out FILE")
		}
		return nil
	}
	switch {
	case c.URL == "":
		return errors.New("-mode bench needs -url, the stream URL")
	case c.Clients < 1 || c.Clients > maxClients:
		return fmt.Errorf("-clients %d: want 1 to %d", c.Clients, maxClients)
	case !(c.Rate > 0) || !(c.EPS > 0):
		return errors.New("-rate and -eps must be positive")
	case c.Events < 0 || c.Events > maxEvents:
		return fmt.Errorf("-events %d: want 0 to %d", c.Events, maxEvents)
	case int64(c.Clients)*int64(c.Events) > 1<<31:
		return fmt.Errorf("-clients x -events = %d: at most %d (each client keeps a bitmap of what it had)", int64(c.Clients)*int64(c.Events), int64(1)<<31)
	case c.InFlight < 1 || c.InFlight > 1024:
		return fmt.Errorf("-inflight %d: want 1 to 1024", c.InFlight)
	case c.Size < 32 || c.Size > maxEventSize:
		return fmt.Errorf("-size %d: want 32 to %d", c.Size, maxEventSize)
	case c.Settle < 0 || c.Drain <= 0 || c.Warmup <= 0 || c.Connect <= 0 || c.Timeout <= 0:
		return errors.New("-drain, -warmup, -connect-timeout and -timeout must be positive, -settle not negative")
	}
	t, err := parseTarget(c.URL)
	if err != nil {
		return err
	}
	c.target = t
	if c.Run == "" {
		c.Run = fmt.Sprintf("%dx%g", c.Clients, c.EPS)
		if c.Events == 0 {
			c.Run = fmt.Sprintf("%d idle", c.Clients)
		}
	}
	if c.Redis != "" {
		if err := checkLoopback("-redis", c.Redis); err != nil {
			return err
		}
	}
	switch c.Publish {
	case publishHTTP:
		if c.PublishURL == "" {
			return errors.New("-publish http needs -publish-url")
		}
		if c.publish, err = parseTarget(c.PublishURL); err != nil {
			return fmt.Errorf("-publish-url: %w", err)
		}
	case publishRedisPublish, publishRedisSet:
		if c.Redis == "" {
			return fmt.Errorf("-publish %s needs -redis", c.Publish)
		}
		if c.Publish == publishRedisSet && (c.Prefix == "" || strings.Contains(c.Prefix, seqMarker)) {
			return errors.New("-prefix must be non-empty")
		}
	default:
		return fmt.Errorf("-publish %q: want %s, %s or %s", c.Publish, publishRedisPublish, publishRedisSet, publishHTTP)
	}
	return nil
}

// marker is what precedes the sequence number in a delivered frame.
func (c *benchConfig) marker() string {
	if c.Publish == publishRedisSet {
		return c.Prefix
	}
	return seqMarker
}
