package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/testkit"
)

// The tested deployment of issue 13 and docs/deploy.md: three Keyflux
// processes with --journal on one redis-server, nginx in front with
// docs/deploy/nginx.conf, TLS and HTTP/2. Clients resume exactly on
// whichever instance they reach: moved between instances, across the
// journal writer's SIGKILL, and through a rolling restart. (Chromium
// holding ten streams over nginx's HTTP/2 is TestBrowserTenStreamsOverNginxHTTP2.)

// journalLease is the tests' --journal-lease: short, so failover is quick.
const journalLease = time.Second

// deployment is the running deployment.
type deployment struct {
	rc      rueidis.Client
	inst    [3]*instance
	nginx   *testkit.Nginx
	clients streamClients
}

func startDeployment(t *testing.T) *deployment {
	t.Helper()
	rs := testkit.StartRedis(t)
	d := &deployment{rc: testkit.NewClient(t, rs)}
	// What docs/deploy.md puts in /etc/keyflux/keyflux.env; each
	// instance's own KEYFLUX_LISTEN is the unit's.
	env := []string{
		"KEYFLUX_REDIS_URL=" + rs.URL(),
		"KEYFLUX_JOURNAL=true",
		"KEYFLUX_JOURNAL_LEASE=" + journalLease.String(),
		"KEYFLUX_TRUSTED_PROXIES=127.0.0.1/32",
		"KEYFLUX_LOG_LEVEL=debug",
		// Every test client comes from 127.0.0.1, and hundreds of them
		// reconnect at once when an instance stops.
		"KEYFLUX_MAX_CLIENTS_PER_IP=10000",
		"KEYFLUX_STREAM_RATE_PER_IP=10000",
		"KEYFLUX_STREAM_BURST_PER_IP=10000",
	}
	for i := range d.inst {
		d.inst[i] = startInstance(t, "keyflux"+strconv.Itoa(i), env...)
	}
	for _, in := range d.inst {
		in.waitReady()
	}
	d.nginx = testkit.StartNginx(t, testkit.NginxOptions{
		Upstreams: []string{d.inst[0].addr, d.inst[1].addr, d.inst[2].addr}, TLS: true})
	t.Cleanup(func() {
		if t.Failed() {
			logs := d.nginx.ErrorLog()
			if f, err := os.CreateTemp("", "keyflux-nginx-*.log"); err == nil {
				_, _ = f.WriteString(logs)
				f.Close()
				t.Logf("nginx: full error log in %s", f.Name())
			}
			if len(logs) > 4000 {
				logs = "..." + logs[len(logs)-4000:]
			}
			t.Logf("nginx error log (end):\n%s", logs)
		}
	})
	d.clients = newStreamClients(t, d.nginx)
	t.Logf("instances: %s %s %s; nginx: %s", d.inst[0].addr, d.inst[1].addr, d.inst[2].addr, d.nginx.URL)
	return d
}

// rotate sends connection n to instance (first+n) mod 3, or the next one
// running.
func (d *deployment) rotate(first int) target {
	return func(n int) (*http.Client, string) {
		for k := range 3 {
			if in := d.inst[(first+n+k)%3]; in.alive() {
				return d.clients.direct, in.base()
			}
		}
		return d.clients.direct, d.inst[(first+n)%3].base()
	}
}

// viaNginx sends every connection through nginx with hc.
func (d *deployment) viaNginx(hc *http.Client) target {
	return func(int) (*http.Client, string) { return hc, d.nginx.URL }
}

// writer is the index of the instance whose gauge says it writes the
// journal whose key starts with prefix, -1 if none does; it fails the
// test if two do.
func (d *deployment) writer(t *testing.T, prefix string) int {
	t.Helper()
	w := -1
	for i, in := range d.inst {
		if !in.alive() {
			continue
		}
		if is, _ := in.journalWriter(prefix); is {
			if w >= 0 {
				t.Fatalf("both %s and %s say they write %s*", d.inst[w].name, in.name, prefix)
			}
			w = i
		}
	}
	return w
}

func (d *deployment) publish(channel string) func(i int) rueidis.Completed {
	return func(i int) rueidis.Completed {
		return d.rc.B().Publish().Channel(channel).Message("n=" + strconv.Itoa(i)).Build()
	}
}

func (d *deployment) set(prefix string) func(i int) rueidis.Completed {
	return func(i int) rueidis.Completed {
		return d.rc.B().Set().Key(prefix + strconv.Itoa(i)).Value("v").Build()
	}
}

// (a) A client whose connection is moved ten times, each time onto
// another instance (then once through nginx), under 1,000 events/s,
// receives every event exactly once, in order, without a reset.
func TestJournalMovesBetweenInstances(t *testing.T) {
	d := startDeployment(t)
	t.Run("channel", func(t *testing.T) {
		moveTest(t, d, "/streams/channels/mv", channelEvents, d.publish("mv"), func() error {
			return d.rc.Do(context.Background(), d.rc.B().Publish().Channel("mv").Message("warm").Build()).Error()
		})
	})
	t.Run("keyspace", func(t *testing.T) {
		moveTest(t, d, "/streams/keyspace?pattern=mv:*&events=set", keyspaceEvents("mv:"), d.set("mv:"), func() error {
			return d.rc.Do(context.Background(), d.rc.B().Set().Key("mv:warm").Value("v").Build()).Error()
		})
	})
}

func moveTest(t *testing.T, d *deployment, path string, classify classifier, cmd func(int) rueidis.Completed, warm func() error) {
	const moves, every = 10, 200 // events received between moves
	ctx, cancel := context.WithCancel(context.Background())
	// Connection n (from 0) goes to instance n mod 3: each move lands on
	// another instance. The one after the tenth move goes through nginx.
	pick := func(n int) (*http.Client, string) {
		if n > moves {
			return d.clients.h2, d.nginx.URL
		}
		return d.clients.direct, d.inst[n%3].base()
	}
	c := startClient(ctx, "mover", path, classify, pick)
	t.Cleanup(func() { stopClients(cancel, []*sseClient{c}) })
	warmUp(t, []*sseClient{c}, warm)

	p := startPublisher(t, d.rc, 1000, cmd)
	for m := 1; m <= moves+1; m++ {
		var target int
		c.state(func(c *sseClient) bool { target = c.last + every; return true })
		c.mustAwait(t, "events before move "+strconv.Itoa(m), 10*time.Second, atLeast(target))
		if !c.cut() {
			t.Fatalf("move %d: no connection to cut (%s)", m, c.summary())
		}
		c.mustAwait(t, "connection after move "+strconv.Itoa(m), 10*time.Second,
			func(c *sseClient) bool { return c.conns == m+1 && c.cur != nil })
	}
	var target int
	c.state(func(c *sseClient) bool { target = c.last + every; return true })
	c.mustAwait(t, "events after the last move", 10*time.Second, atLeast(target))
	n := p.finish(t)
	c.mustAwait(t, "every event", 10*time.Second, atLeast(n-1))
	stopClients(cancel, []*sseClient{c})
	if err := c.check(n-1, 0); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped != 0 || c.failed != 0 || c.conns != moves+2 {
		t.Fatalf("%d connections (want %d), %d ended by the server, %d failed attempts %q",
			c.conns, moves+2, c.dropped, c.failed, c.errs)
	}
	t.Logf("%d events over %d connections: %v", n, c.conns, c.where)
}

// (b) SIGKILL of the journal writer mid-stream: clients on the surviving
// instances keep going, clients on the killed one reconnect elsewhere, a
// new writer takes over within a few lease periods, and every client
// receives the same sequence: exact, or exact up to one reset
// (upstream-gap) after which events continue in order, without duplicates.
func TestJournalWriterKilled(t *testing.T) {
	d := startDeployment(t)
	const channel, journal = "kill", "keyflux:journal:channel:"
	ctx, cancel := context.WithCancel(context.Background())
	path := "/streams/channels/" + channel
	var clients []*sseClient
	for i := range d.inst {
		// Stays on instance i while it runs, then goes to the next one.
		clients = append(clients, startClient(ctx, "on"+strconv.Itoa(i), path, channelEvents, d.rotate(i)))
	}
	mover := startClient(ctx, "mover", path, channelEvents, d.rotate(0))
	proxied := startClient(ctx, "nginx", path, channelEvents, d.viaNginx(d.clients.h2))
	clients = append(clients, mover, proxied)
	t.Cleanup(func() { stopClients(cancel, clients) })
	warmUp(t, clients, func() error {
		return d.rc.Do(context.Background(), d.rc.B().Publish().Channel(channel).Message("warm").Build()).Error()
	})
	w := -1
	testkit.Eventually(t, "a journal writer", func() bool { w = d.writer(t, journal); return w >= 0 })
	t.Logf("writer: %s", d.inst[w].name)

	// The mover moves to the next running instance every 150 events.
	moverDone := make(chan struct{})
	go func() {
		defer close(moverDone)
		for {
			var target int
			mover.state(func(c *sseClient) bool { target = c.last + 150; return true })
			if !mover.await(ctx, time.Minute, atLeast(target)) {
				return
			}
			mover.cut()
		}
	}()
	t.Cleanup(func() { cancel(); <-moverDone })

	p := startPublisher(t, d.rc, 1000, d.publish(channel))
	for _, c := range clients {
		c.mustAwait(t, "events before the kill", 10*time.Second, atLeast(500))
	}
	killed := time.Now()
	d.inst[w].kill()
	t.Logf("killed %s (SIGKILL) after %d events", d.inst[w].name, p.sent())

	// A new writer: a state, polled on the survivors' gauges.
	nw := -1
	testkit.Eventually(t, "a new journal writer", func() bool { nw = d.writer(t, journal); return nw >= 0 })
	took := time.Since(killed)
	t.Logf("new writer %s after %v", d.inst[nw].name, took)
	if took > 5*journalLease {
		t.Errorf("a new writer took %v, more than 5 leases (%v)", took, journalLease)
	}
	// The killed instance comes back on its port; the mover will use it.
	d.inst[w].restart()
	mark := p.sent()
	for _, c := range clients {
		c.mustAwait(t, "events after the takeover", 15*time.Second, atLeast(mark+300))
	}
	n := p.finish(t)
	for _, c := range clients {
		c.mustAwait(t, "every event", 15*time.Second, atLeast(n-1))
	}
	cancel()
	<-moverDone
	stopClients(cancel, clients)

	if err := checkAll(clients, n-1, 1); err != nil {
		t.Fatal(err)
	}
	// Every instance serves the same journal: every client received the
	// very same events with the very same ids, the reset (if any) at the
	// same place.
	want := clients[0].trace()
	for _, c := range clients[1:] {
		got := c.trace()
		for i := range max(len(got), len(want)) {
			if i >= len(got) || i >= len(want) || got[i] != want[i] {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				t.Fatalf("%s and %s differ at their event %d: %q vs %q", c.name, clients[0].name, i, g, w)
			}
		}
	}
	if id, at := clients[0].resetAt(); id != "" {
		t.Logf("every client got reset %s, then n=%d (%d events lost)", id, at, lostBefore(clients[0], at))
	} else {
		t.Logf("no reset: the new writer filled the gap exactly")
	}
	for i, c := range clients[:3] {
		c.mu.Lock()
		dropped := c.dropped
		c.mu.Unlock()
		if i != w && dropped != 0 {
			t.Errorf("%s: the stream on a surviving instance ended %d times", c.name, dropped)
		}
	}
	t.Logf("%s", strings.Join([]string{clients[w].summary(), mover.summary(), proxied.summary()}, "; "))
}

// lostBefore counts the numbers missing before n in what c received.
func lostBefore(c *sseClient, n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := 0
	for _, e := range c.events {
		if e.kind == kindNum && e.n < n {
			got++
		}
	}
	return n - got
}

// (c) A rolling restart, SIGTERM then start on the same port, of all three
// instances one after the other while 200 clients stream through nginx
// (half over HTTP/2, half over HTTP/1.1) and 200 events/s are published:
// every client receives every event exactly once, in order, and no reset.
func TestJournalRollingRestart(t *testing.T) {
	d := startDeployment(t)
	const channel, n = "roll", 200
	ctx, cancel := context.WithCancel(context.Background())
	path := "/streams/channels/" + channel
	var clients []*sseClient
	for i := range n {
		hc := d.clients.h2
		if i%2 == 1 {
			hc = d.clients.h1
		}
		clients = append(clients, startClient(ctx, "client"+strconv.Itoa(i), path, channelEvents, d.viaNginx(hc)))
	}
	t.Cleanup(func() { stopClients(cancel, clients) })
	warmUp(t, clients, func() error {
		return d.rc.Do(context.Background(), d.rc.B().Publish().Channel(channel).Message("warm").Build()).Error()
	})

	p := startPublisher(t, d.rc, 200, d.publish(channel))
	for _, in := range d.inst {
		// Every client streams (again) before each restart, the first one
		// with some history in the journal.
		mark := max(p.sent(), 100)
		for _, c := range clients {
			c.mustAwait(t, "events before restarting "+in.name, 15*time.Second, atLeast(mark))
		}
		start := time.Now()
		in.stop()
		in.restart()
		t.Logf("%s restarted in %v", in.name, time.Since(start))
	}
	mark := p.sent()
	for _, c := range clients {
		c.mustAwait(t, "events after the restarts", 15*time.Second, atLeast(mark))
	}
	last := p.finish(t)
	for _, c := range clients {
		c.mustAwait(t, "every event", 15*time.Second, atLeast(last-1))
	}
	stopClients(cancel, clients)
	if logs := d.nginx.ErrorLog(); strings.Contains(logs, "no live upstreams") {
		t.Errorf("nginx had no live upstream for %d requests: are instances marked unavailable (%s)?",
			strings.Count(logs, "no live upstreams"), testkit.NginxServerParams)
	}
	resets := map[string]int{}
	for _, c := range clients {
		if id, at := c.resetAt(); id != "" {
			resets[fmt.Sprintf("reset %s, then n=%d (%d events lost)", id, at, lostBefore(c, at))]++
		}
	}
	for what, n := range resets {
		t.Errorf("%d of %d clients got %s", n, len(clients), what)
	}
	if err := checkAll(clients, last-1, 0); err != nil {
		t.Fatal(err)
	}
	conns, failed := 0, 0
	for _, c := range clients {
		c.mu.Lock()
		if c.conns < 2 {
			t.Errorf("%s never reconnected: %d connection", c.name, c.conns)
		}
		conns += c.conns
		failed += c.failed
		c.mu.Unlock()
	}
	t.Logf("%d clients, %d events each, %d connections, %d failed attempts", n, last, conns, failed)
}
