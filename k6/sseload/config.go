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
	modeIdle   = "idle"
	modeFanout = "fanout"

	// maxClients stays under the 20,000 open files a process may have
	// here, leaving room for the Redis connection, /metrics and stdio.
	maxClients = 19_000
	// maxEvents bounds a fanout run; at the default rate it is 1000 s.
	maxEvents = 1_000_000
)

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
	PID    int

	// fanout
	Redis   string
	Events  int
	EPS     float64
	Drain   time.Duration
	Stalled int // extra streams that stop reading after "connected"
	KeySize int // bytes per key written, 0 = unpadded

	target target
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
loopback and measures the server's memory per idle stream (-mode idle) or the
write-to-delivery latency of keyspace events (-mode fanout). It stops by
itself: a fixed number of streams and events, within -timeout.

Usage:
  sseload -mode idle   [-clients N] [-rate R] [-pid PID] [-hold D] [-settle D] [-url URL]
  sseload -mode fanout -redis HOST:PORT [-clients N] [-events E] [-eps R] [-url URL]
                       [-stalled S] [-keysize B]

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
          before its SET, and print received, lost and latency p50/p99/max.
          With -stalled S it first opens S more streams that read up to
          "connected" and then never again (a frozen tab: the connection
          stays up, the window stays shut). After the run it drains each and
          reports whether the server cut it off (EOF or reset, or its final
          ": slow consumer" comment), with keyflux_slow_consumers_total. The
          stalled streams' frames must outgrow the socket buffers (a few MB
          on loopback) plus the server's --queue-bytes within the run: make
          the frames bigger with -keysize (e.g. 200) if they do not.

Exit status: 0 the measurement completed cleanly; 1 it ran but a stream
failed to connect or dropped, events were lost, a stalled stream was not
cut off, a reading failed, or it was interrupted or timed out; 2 bad flags.

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
	fs.StringVar(&c.Mode, "mode", modeIdle, "idle or fanout")
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080/streams/keyspace?pattern=load:*", "stream URL (http, loopback host)")
	fs.IntVar(&c.Clients, "clients", 1000, "concurrent streams to open (at most "+strconv.Itoa(maxClients)+")")
	fs.Float64Var(&c.Rate, "rate", 500, "streams opened per second while ramping up")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 10*time.Second, "time allowed for one stream to connect and receive its \"connected\" event")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "limit for the whole run")
	fs.DurationVar(&c.Hold, "hold", 30*time.Second, "idle: how long to keep the streams open once all are connected")
	fs.DurationVar(&c.Settle, "settle", 5*time.Second, "idle: wait after the last stream connects before reading VmRSS")
	fs.IntVar(&c.PID, "pid", 0, "idle: process id of the Keyflux server, whose VmRSS is read from /proc")
	fs.StringVar(&c.Redis, "redis", "", "fanout: host:port of the Redis the server uses (loopback)")
	fs.IntVar(&c.Events, "events", 10_000, "fanout: keys to SET (at most "+strconv.Itoa(maxEvents)+")")
	fs.Float64Var(&c.EPS, "eps", 1000, "fanout: SETs per second")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "fanout: after the last SET, how long to wait without progress for deliveries")
	fs.IntVar(&c.Stalled, "stalled", 0, "fanout: extra streams, opened first, that stop reading after \"connected\"; the server must cut each off")
	fs.IntVar(&c.KeySize, "keysize", 0, "fanout: pad every key to this many bytes (seq zero-padded; at most "+strconv.Itoa(maxKeySize)+"), for bigger frames; 0 = no padding")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.check()
}

// check validates the flags and resolves the target.
func (c *config) check() error {
	switch {
	case c.Mode != modeIdle && c.Mode != modeFanout:
		return fmt.Errorf("-mode %q: want %s or %s", c.Mode, modeIdle, modeFanout)
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

// streams is how many sockets the run holds open to the server.
func (c *config) streams() int { return c.Clients + c.Stalled }

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
