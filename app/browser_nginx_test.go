package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"github.com/keyflux/keyflux/streams/testkit"
)

// Why docs/deploy.md puts nginx's HTTP/2 in front of Keyflux, shown in a
// real Chromium: a page holds ten streams at once over HTTP/2, while over
// Keyflux's own HTTP/1.1 it holds six (Chromium's connections per origin)
// and the rest wait.

// pageStreams is how many EventSources the page opens at once.
const pageStreams = 10

// streamProtocols records the protocol and the connection of every response
// to a stream URL the page gets, as Chromium reports them.
type streamProtocols struct {
	mu    sync.Mutex
	proto map[string]string  // by URL
	conn  map[string]float64 // by URL
}

func recordStreamProtocols(t *testing.T, p *corsPage) *streamProtocols {
	t.Helper()
	s := &streamProtocols{proto: map[string]string{}, conn: map[string]float64{}}
	if err := chromedp.Listen(p.ctx, func(ev any) {
		if e, ok := ev.(*network.EventResponseReceived); ok && strings.Contains(e.Response.URL, "/streams/channels/") {
			s.mu.Lock()
			s.proto[e.Response.URL] = e.Response.Protocol
			s.conn[e.Response.URL] = e.Response.ConnectionID
			s.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// check asserts that n stream responses came, all over proto, on at most
// conns distinct connections.
func (s *streamProtocols) check(t *testing.T, n int, proto string, conns int) {
	t.Helper()
	// Chromium reports a response before the page sees its events, but
	// the report reaches the test on its own goroutine.
	testkit.Eventually(t, "the streams' responses", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.proto) >= n
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.proto) != n {
		t.Fatalf("%d stream responses, want %d: %v", len(s.proto), n, s.proto)
	}
	for url, got := range s.proto {
		if got != proto {
			t.Fatalf("%s came over %q, want %q", url, got, proto)
		}
	}
	distinct := map[float64]bool{}
	for _, c := range s.conn {
		distinct[c] = true
	}
	if len(distinct) > conns {
		t.Fatalf("the streams used %d connections, want at most %d", len(distinct), conns)
	}
}

// openStreams opens pageStreams EventSources on /streams/channels/c0..c9
// from the page at once, recording in window.__streams which got their
// "connected" event and the messages each received.
func openStreams(p *corsPage) {
	p.t.Helper()
	eval[bool](p.page, `(() => {
		const s = window.__streams = { es: [], connected: [], got: [] };
		for (let i = 0; i < `+strconv.Itoa(pageStreams)+`; i++) {
			const es = new EventSource("/streams/channels/c" + i);
			s.es.push(es);
			s.connected.push(false);
			s.got.push([]);
			es.addEventListener("connected", () => { s.connected[i] = true; });
			es.addEventListener("message", e => s.got[i].push(e.data));
		}
		return true;
	})()`)
}

// streamState is a JavaScript condition on the page's streams: how many
// ever got "connected", how many are OPEN and how many still CONNECTING.
func streamState(connected, open, connecting int) string {
	return fmt.Sprintf(`window.__streams.connected.filter(Boolean).length === %d &&
		window.__streams.es.filter(e => e.readyState === EventSource.OPEN).length === %d &&
		window.__streams.es.filter(e => e.readyState === EventSource.CONNECTING).length === %d`,
		connected, open, connecting)
}

const streamDebug = `JSON.stringify({ connected: window.__streams.connected,
	state: window.__streams.es.map(e => e.readyState), got: window.__streams.got })`

func TestBrowserTenStreamsOverNginxHTTP2(t *testing.T) {
	rs := testkit.StartRedis(t)
	a := startKeyfluxOn(t, rs, "--trusted-proxies", "127.0.0.1/32")
	b := startKeyfluxOn(t, rs, "--trusted-proxies", "127.0.0.1/32")
	ng := testkit.StartNginx(t, testkit.NginxOptions{Upstreams: []string{a.srv.addr(), b.srv.addr()}, TLS: true})

	p := openPage(t, "about:blank")
	// The certificate is the test's own, self-signed: this browser (and no
	// other test's) ignores certificate errors. TLS itself stays: Chromium
	// speaks HTTP/2 only over TLS.
	p.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true})
		return err
	}))
	protocols := recordStreamProtocols(t, p)
	// A page of Keyflux's origin (through nginx): its streams are same-origin.
	p.do(chromedp.Navigate(ng.URL + "/healthz"))
	p.waitFor(`document.readyState === "complete"`, "the page through nginx")
	if got := eval[string](p.page, `location.protocol + " " + performance.getEntriesByType("navigation")[0].nextHopProtocol`); got != "https: h2" {
		t.Fatalf("the page came over %q, want https: h2", got)
	}

	openStreams(p)
	p.waitFor(streamState(pageStreams, pageStreams, 0), "all ten streams to be open and connected")
	testkit.Eventually(t, "ten streams on the two instances", func() bool {
		return a.srv.sink.Clients()+b.srv.sink.Clients() == pageStreams
	})
	// All ten on one HTTP/2 connection.
	protocols.check(t, pageStreams, "h2", 1)

	// Each stream gets its own channel's message, and only it.
	for i := range pageStreams {
		a.do("PUBLISH", "c"+strconv.Itoa(i), "m"+strconv.Itoa(i))
	}
	p.waitFor(`window.__streams.got.every(g => g.length > 0)`, "a message on every stream")
	want := `[["m0"],["m1"],["m2"],["m3"],["m4"],["m5"],["m6"],["m7"],["m8"],["m9"]]`
	if got := eval[string](p.page, `JSON.stringify(window.__streams.got)`); got != want {
		t.Fatalf("the streams received %s, want %s", got, want)
	}
	if !eval[bool](p.page, streamState(pageStreams, pageStreams, 0)) {
		t.Fatalf("after the messages: %s", eval[string](p.page, streamDebug))
	}
}

func TestBrowserSixStreamsOverHTTP1(t *testing.T) {
	k := startKeyflux(t, nil)
	p := openPage(t, k.base+"/healthz")
	protocols := recordStreamProtocols(t, p)
	if got := eval[string](p.page, `performance.getEntriesByType("navigation")[0].nextHopProtocol`); got != "http/1.1" {
		t.Fatalf("the page came over %q, want http/1.1", got)
	}

	openStreams(p)
	p.waitFor(streamState(6, 6, pageStreams-6), "six streams to connect")
	testkit.Eventually(t, "six streams on Keyflux", func() bool { return k.srv.sink.Clients() == 6 })

	// The other four wait for a connection, and so does any other request
	// of the page: a fetch gets no answer within a second (a bounded wait,
	// in the page, to show that nothing happens), then it is aborted so it
	// does not take the next free connection.
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	probe, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const ctl = new AbortController();
		const answer = fetch("/healthz", { signal: ctl.signal }).then(() => "answered", () => "aborted");
		const late = new Promise(ok => setTimeout(() => ok("pending"), 1000));
		const got = await Promise.race([answer, late]);
		ctl.abort();
		return got;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if probe != "pending" {
		t.Fatalf("a fetch next to six streams: %s, want it to wait for a connection", probe)
	}
	if got := eval[bool](p.page, streamState(6, 6, pageStreams-6)); !got {
		t.Fatalf("after a second the streams are %s, want six connected, four waiting", eval[string](p.page, streamDebug))
	}
	if n := k.srv.sink.Clients(); n != 6 {
		t.Fatalf("Keyflux holds %d streams, want 6", n)
	}
	protocols.check(t, 6, "http/1.1", 6)

	// Closing one frees its connection: a waiting stream takes it.
	eval[bool](p.page, `(window.__streams.es[window.__streams.connected.indexOf(true)].close(), true)`)
	p.waitFor(streamState(7, 6, pageStreams-7), "a seventh stream to connect once one closed")
	testkit.Eventually(t, "Keyflux to hold six streams again", func() bool { return k.srv.sink.Clients() == 6 })
	protocols.check(t, 7, "http/1.1", 7)
}
