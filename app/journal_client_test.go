package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/testkit"
)

// What the journal deployment tests' clients do: read one stream like an
// EventSource (testkit.ReadEvents parses the bytes on the wire), reconnect
// at once whenever a connection ends, with the Last-Event-ID of the last
// event received, and keep everything they got for checking.

// A kind classifies a received event.
type kind uint8

const (
	kindConnected kind = iota
	kindReset
	kindWarm  // a warm-up event, sent before the numbered ones
	kindNum   // the test's numbered event n
	kindOther // anything else: always a failure
)

// got is one event as a client received it; data is kept for resets and
// unexpected events only (a run holds hundreds of thousands of events).
type got struct {
	id   string
	kind kind
	n    int
	data string
	conn int // which of the client's connections brought it, from 1
}

// classifier names an event from its SSE type and data.
type classifier func(typ, data string) (kind, int)

// channelEvents: "message" events "warm" and "n=<i>" of /streams/channels.
func channelEvents(typ, data string) (kind, int) {
	switch typ {
	case "connected":
		return kindConnected, 0
	case "reset":
		return kindReset, 0
	case "message":
		if data == "warm" {
			return kindWarm, 0
		}
		if v, ok := strings.CutPrefix(data, "n="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return kindNum, n
			}
		}
	}
	return kindOther, 0
}

// keyspaceEvents: "set" events of keys <prefix>warm and <prefix><i>.
func keyspaceEvents(prefix string) classifier {
	return func(typ, data string) (kind, int) {
		switch typ {
		case "connected":
			return kindConnected, 0
		case "reset":
			return kindReset, 0
		case "set":
			_, rest, ok := strings.Cut(data, `"key":"`+prefix)
			if !ok {
				break
			}
			v, _, ok := strings.Cut(rest, `"`)
			if !ok {
				break
			}
			if v == "warm" {
				return kindWarm, 0
			}
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return kindNum, n
			}
		}
		return kindOther, 0
	}
}

// target is where a client's n-th connection (from 0) goes.
type target func(n int) (hc *http.Client, base string)

// sseClient is one reconnecting stream reader.
type sseClient struct {
	name     string
	path     string
	classify classifier
	pick     target

	mu      sync.Mutex
	events  []got
	lastID  string
	conns   int // connections that opened (200)
	cuts    int // connections the test cut
	dropped int // connections that ended otherwise
	where   []string
	errs    []string // failed attempts, at most a few kept
	failed  int
	last    int // highest number received, -1 for none
	warm    bool
	cur     *http.Response
	curCut  bool
	wake    chan struct{}
	stopped chan struct{}
}

// startClient reads path until ctx ends, connecting where pick says.
func startClient(ctx context.Context, name, path string, classify classifier, pick target) *sseClient {
	c := &sseClient{name: name, path: path, classify: classify, pick: pick, last: -1,
		wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go c.loop(ctx)
	return c
}

func (c *sseClient) loop(ctx context.Context) {
	defer close(c.stopped)
	for ctx.Err() == nil {
		c.mu.Lock()
		n := c.conns
		c.mu.Unlock()
		hc, base := c.pick(n)
		if err := c.read(ctx, hc, base); err != nil {
			c.mu.Lock()
			c.failed++
			if len(c.errs) < 5 {
				c.errs = append(c.errs, err.Error())
			}
			c.mu.Unlock()
			select { // a browser's retry delay, short
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// read makes one connection and reads it to its end; an error means it did
// not open.
func (c *sseClient) read(ctx context.Context, hc *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", base+c.path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	c.mu.Lock()
	if c.lastID != "" {
		req.Header.Set("Last-Event-ID", c.lastID)
	}
	c.mu.Unlock()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return fmt.Errorf("%s: %d %s", base, resp.StatusCode, b)
	}
	c.mu.Lock()
	c.conns++
	conn := c.conns
	c.where = append(c.where, base)
	c.cur, c.curCut = resp, false
	c.mu.Unlock()
	for ev := range testkit.ReadEvents(resp.Body, 256) {
		k, n := c.classify(ev.Type, ev.Data)
		g := got{id: ev.LastEventID, kind: k, n: n, conn: conn}
		if k == kindReset || k == kindOther {
			g.data = ev.Type + " " + ev.Data
		}
		c.mu.Lock()
		// go-sse keeps the id of the connection's latest event with an
		// id, as a browser does; a new connection starts with none.
		if ev.LastEventID != "" {
			c.lastID = ev.LastEventID
		}
		c.events = append(c.events, g)
		switch k {
		case kindNum:
			c.last = max(c.last, n)
		case kindWarm:
			c.warm = true
		}
		c.mu.Unlock()
		c.poke()
	}
	resp.Body.Close()
	c.mu.Lock()
	if c.curCut {
		c.cuts++
	} else if ctx.Err() == nil {
		c.dropped++
	}
	c.cur = nil
	c.mu.Unlock()
	c.poke()
	return nil
}

func (c *sseClient) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// cut closes the current connection, as a client moving elsewhere does;
// it reports whether there was one.
func (c *sseClient) cut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || c.curCut {
		return false
	}
	c.curCut = true
	c.cur.Body.Close()
	return true
}

// state runs f on the client's state, locked.
func (c *sseClient) state(f func(c *sseClient) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return f(c)
}

// await waits until cond holds, for up to d; false if it does not.
func (c *sseClient) await(ctx context.Context, d time.Duration, cond func(c *sseClient) bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !c.state(cond) {
		select {
		case <-c.wake:
		case <-timer.C:
			return c.state(cond)
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// mustAwait fails the test unless cond holds within d.
func (c *sseClient) mustAwait(t *testing.T, what string, d time.Duration, cond func(c *sseClient) bool) {
	t.Helper()
	if !c.await(context.Background(), d, cond) {
		t.Fatalf("%s: no %s within %v (%s)", c.name, what, d, c.summary())
	}
}

func atLeast(n int) func(c *sseClient) bool { return func(c *sseClient) bool { return c.last >= n } }

func sawWarm(c *sseClient) bool { return c.warm }

// summary says where the client stands, for failures.
func (c *sseClient) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("last number %d, %d events, %d connections (%d cut, %d dropped), %d failed attempts %q, last id %q",
		c.last, len(c.events), c.conns, c.cuts, c.dropped, c.failed, c.errs, c.lastID)
}

// check verifies what the client received: numbered events 0, 1, ... last,
// each exactly once and in order, with distinct ids in increasing order;
// at most maxResets reset events (reason upstream-gap, with an id), and
// the numbering may skip forward only right after one. Warm-up events may
// only come before the first numbered event.
func (c *sseClient) check(last, maxResets int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next, resets, afterReset, numbered := 0, 0, false, false
	seen := map[string]int{}
	prev := ""
	around := func(i int) string {
		var b strings.Builder
		for j := max(0, i-4); j < min(len(c.events), i+3); j++ {
			e := c.events[j]
			fmt.Fprintf(&b, "\n  #%d conn %d (%s) id %q kind %d n %d %s", j, e.conn, c.where[e.conn-1], e.id, e.kind, e.n, e.data)
		}
		return b.String()
	}
	for i, e := range c.events {
		switch e.kind {
		case kindConnected:
			continue
		case kindWarm:
			if numbered {
				return fmt.Errorf("%s: warm-up event after numbered ones:%s", c.name, around(i))
			}
			continue
		case kindOther:
			return fmt.Errorf("%s: unexpected event:%s", c.name, around(i))
		case kindReset:
			resets++
			if resets > maxResets {
				return fmt.Errorf("%s: reset number %d, at most %d allowed:%s", c.name, resets, maxResets, around(i))
			}
			if !strings.Contains(e.data, `"reason":"upstream-gap"`) {
				return fmt.Errorf("%s: reset is not upstream-gap:%s", c.name, around(i))
			}
			afterReset = true
		case kindNum:
			switch {
			case e.n < next:
				return fmt.Errorf("%s: n=%d again or out of order (expected %d):%s", c.name, e.n, next, around(i))
			case e.n > next && !afterReset:
				return fmt.Errorf("%s: n=%d to %d missing:%s", c.name, next, e.n-1, around(i))
			}
			numbered, afterReset, next = true, false, e.n+1
		}
		if e.id == "" {
			return fmt.Errorf("%s: event without an id:%s", c.name, around(i))
		}
		if j, dup := seen[e.id]; dup {
			return fmt.Errorf("%s: id %q twice (#%d):%s", c.name, e.id, j, around(i))
		}
		seen[e.id] = i
		if prev != "" && !idBefore(prev, e.id) {
			return fmt.Errorf("%s: id %q not after %q:%s", c.name, e.id, prev, around(i))
		}
		prev = e.id
	}
	if next != last+1 {
		return fmt.Errorf("%s: received up to n=%d, want n=%d (%s)", c.name, next-1, last, c.summaryLocked())
	}
	return nil
}

func (c *sseClient) summaryLocked() string {
	return fmt.Sprintf("%d events, %d connections, %d cut, %d dropped", len(c.events), c.conns, c.cuts, c.dropped)
}

// trace is the client's numbered events and resets as "id n" lines: the
// journal's order, which every client must see alike.
func (c *sseClient) trace() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		switch e.kind {
		case kindNum:
			out = append(out, e.id+" n="+strconv.Itoa(e.n))
		case kindReset:
			out = append(out, e.id+" reset")
		}
	}
	return out
}

// resetAt is the number of the first numbered event after the client's
// reset, -1 when it got none.
func (c *sseClient) resetAt() (id string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.events {
		if e.kind == kindReset {
			for _, f := range c.events[i:] {
				if f.kind == kindNum {
					return e.id, f.n
				}
			}
			return e.id, -1
		}
	}
	return "", -1
}

// idBefore orders Redis Stream entry ids ("<ms>-<seq>"); ids of another
// shape are only required to differ.
func idBefore(a, b string) bool {
	am, as, aok := entryID(a)
	bm, bs, bok := entryID(b)
	if !aok || !bok {
		return a != b
	}
	return am < bm || am == bm && as < bs
}

func entryID(s string) (ms, seq uint64, ok bool) {
	l, r, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(l, 10, 64)
	seq, err2 := strconv.ParseUint(r, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// publisher sends numbered events at a steady rate until halted.
type publisher struct {
	rc    rueidis.Client
	count atomic.Int64
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	start time.Time
	err   error
}

// startPublisher runs cmd(0), cmd(1), ... at rate per second on rc, from
// a goroutine, until halted; it is halted when the test ends.
func startPublisher(t *testing.T, rc rueidis.Client, rate int, cmd func(i int) rueidis.Completed) *publisher {
	p := &publisher{rc: rc, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			due := int(time.Since(p.start).Seconds()*float64(rate)) + 1
			for ; i < due; i++ {
				if err := rc.Do(context.Background(), cmd(i)).Error(); err != nil {
					p.err = fmt.Errorf("publishing event %d: %w", i, err)
					return
				}
				p.count.Store(int64(i + 1))
			}
			select {
			case <-p.stop:
				return
			case <-tick.C: // the pace of the load, not a wait for an event
			}
		}
	}()
	t.Cleanup(func() { p.halt() })
	return p
}

// sent is how many events went out so far.
func (p *publisher) sent() int { return int(p.count.Load()) }

// halt stops publishing and returns how many events went out.
func (p *publisher) halt() (int, error) {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	return p.sent(), p.err
}

// finish halts p, failing the test on a publishing error, and logs the rate.
func (p *publisher) finish(t *testing.T) int {
	t.Helper()
	n, err := p.halt()
	if err != nil {
		t.Fatal(err)
	}
	secs := time.Since(p.start).Seconds()
	t.Logf("published %d events in %.1f s (%.0f/s)", n, secs, float64(n)/secs)
	return n
}

// warmUp publishes warm-up events until every client has received one:
// the stream is then live end to end (journal writer included) for each.
func warmUp(t *testing.T, clients []*sseClient, publish func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		if err := publish(); err != nil {
			t.Fatal(err)
		}
		all := true
		for _, c := range clients {
			if !c.await(context.Background(), 100*time.Millisecond, sawWarm) {
				all = false
				break
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for _, c := range clients {
				if !c.state(sawWarm) {
					t.Fatalf("%s got no warm-up event in 15 s (%d sent): %s", c.name, i+1, c.summary())
				}
			}
		}
	}
}

// streamClients are the HTTP clients of a deployment's streams.
type streamClients struct {
	direct *http.Client // to an instance, plain HTTP/1.1, one connection per stream
	h2     *http.Client // to nginx, HTTP/2 over TLS
	h1     *http.Client // to nginx, HTTP/1.1 over TLS
}

func newStreamClients(t *testing.T, ng *testkit.Nginx) streamClients {
	direct := &http.Transport{DisableKeepAlives: true}
	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ng.Pool}, ForceAttemptHTTP2: true}
	h1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ng.Pool},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}} // no HTTP/2
	t.Cleanup(func() {
		direct.CloseIdleConnections()
		h2.CloseIdleConnections()
		h1.CloseIdleConnections()
	})
	return streamClients{direct: &http.Client{Transport: direct}, h2: &http.Client{Transport: h2}, h1: &http.Client{Transport: h1}}
}

// stopClients ends the clients' loops and waits for them.
func stopClients(cancel context.CancelFunc, clients []*sseClient) {
	cancel()
	for _, c := range clients {
		<-c.stopped
	}
}

// checkAll checks every client (see check) and joins the first failures.
func checkAll(clients []*sseClient, last, maxResets int) error {
	var errs []error
	for _, c := range clients {
		if err := c.check(last, maxResets); err != nil {
			errs = append(errs, err)
			if len(errs) == 5 {
				errs = append(errs, errors.New("(more clients not checked)"))
				break
			}
		}
	}
	return errors.Join(errs...)
}
