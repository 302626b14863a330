package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// CORS in a real Chromium: pages served by the test from other origins
// (127.0.0.1 on other ports: other origins, the same site, so a cookie of
// Keyflux's host travels with credentials) use Keyflux as a third-party
// page would.

// pageServer serves an empty page: the test's script runs in its origin.
func pageServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>third-party page</title><p>page</p>"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// corsPage is a page that also records the HTTP status of every response
// it gets, by URL: a refused EventSource looks the same to the page
// whatever the status, the test tells why.
type corsPage struct {
	*page
	mu       sync.Mutex
	urls     map[network.RequestID]string
	statuses map[network.RequestID]int64
	order    []network.RequestID
}

// status is the statuses of the responses to url, oldest first. (From the
// raw responses: a response refused by CORS reaches no other event.)
func (p *corsPage) status(url string) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int64
	for _, id := range p.order {
		if p.urls[id] == url {
			if st, ok := p.statuses[id]; ok {
				out = append(out, st)
			}
		}
	}
	return out
}

// openPage starts a fresh Chromium at url (a page of another origin). Any
// uncaught exception fails the test.
func openPage(t *testing.T, url string) *corsPage {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Debian's chromium (go tool task chromium installs it): %v", err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	p := &corsPage{page: &page{t: t, ctx: ctx}, urls: map[network.RequestID]string{}, statuses: map[network.RequestID]int64{}}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p.page.mu.Lock()
			p.exceptions = append(p.exceptions, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
			p.page.mu.Unlock()
		case *network.EventRequestWillBeSent:
			p.mu.Lock()
			p.urls[e.RequestID] = e.Request.URL
			p.order = append(p.order, e.RequestID)
			p.mu.Unlock()
		case *network.EventResponseReceivedExtraInfo:
			p.mu.Lock()
			p.statuses[e.RequestID] = e.StatusCode
			p.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	t.Cleanup(p.noExceptions)
	p.do(chromedp.Navigate(url))
	p.waitFor(`document.readyState === "complete"`, "the page to load")
	return p
}

// setCookie gives the browser a cookie for Keyflux's host, as a login would.
func (p *corsPage) setCookie(k *keyflux, name, value string) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCookie, network.SetCookieParams{
			Name: name, Value: value, URL: k.base + "/", Path: "/",
		})
		return err
	}))
}

// listen opens an EventSource with credentials on url from the page and
// records what it sees in window.__cors.
func (p *corsPage) listen(url string) {
	p.t.Helper()
	eval[bool](p.page, `(() => {
		const r = window.__cors = { events: [], errors: 0, state: -1 };
		const es = new EventSource(`+strconv.Quote(url)+`, { withCredentials: true });
		window.__es = es;
		es.addEventListener("connected", () => r.events.push("connected"));
		es.addEventListener("message", e => r.events.push(e.data));
		es.onerror = () => { r.errors++; r.state = es.readyState; };
		return true;
	})()`)
}

// refused waits until the page's EventSource of url has failed for good (a
// CORS failure or a non-200 answer closes it: no reconnect), checks that no
// event got through and that the last answer had status.
func (p *corsPage) refused(url string, status int64, what string) {
	p.t.Helper()
	p.waitFor(`window.__cors.errors > 0 && window.__es.readyState === EventSource.CLOSED`, what+" to be refused")
	if n := eval[int](p.page, `window.__cors.events.length`); n != 0 {
		p.t.Fatalf("%s: the page received %d events", what, n)
	}
	if got := p.status(url); len(got) == 0 || got[len(got)-1] != status {
		p.t.Fatalf("%s: statuses %v, want the last %d", what, got, status)
	}
}

func TestBrowserCORSEventSource(t *testing.T) {
	listed, unlisted := pageServer(t), pageServer(t)
	k := startKeyflux(t, nil, "--allow-origin", listed)
	stream := k.base + "/streams/channels/news"

	p := openPage(t, listed+"/")
	p.listen(stream)
	p.waitFor(`window.__cors.events.includes("connected")`, "the listed page's stream to connect")
	k.do("PUBLISH", "news", "from redis")
	p.waitFor(`window.__cors.events.includes("from redis")`, "the listed page to receive the message")
	if n := eval[int](p.page, `window.__cors.errors`); n != 0 {
		t.Fatalf("the listed page's stream had %d errors", n)
	}

	q := openPage(t, unlisted+"/")
	// Served (no auth: nothing to refuse), but the browser keeps it from
	// the page: no Access-Control-Allow-Origin.
	q.listen(stream)
	q.refused(stream, 200, "the unlisted page's stream")
}

// A preflighted publish: POST with Authorization and a JSON body from the
// listed page works (and the page can read the answer); from an unlisted
// page the preflight is refused and nothing is published.
func TestBrowserCORSPreflightedPublish(t *testing.T) {
	listed, unlisted := pageServer(t), pageServer(t)
	const token = "publish-secret-for-the-cors-test"
	k := startKeyflux(t, nil, "--allow-origin", listed, "--publish-token", token)
	watch := k.open("/streams/channels/news")
	watch.Expect("connected")
	post := `(window.__post = null, fetch(` + strconv.Quote(k.base+"/api/channels/news") + `, {
		method: "POST", credentials: "include",
		headers: { "Authorization": "Bearer ` + token + `", "Content-Type": "application/json" },
		body: JSON.stringify({ hello: "from the page" }),
	}).then(async r => { window.__post = r.status + " " + (await r.text()); },
		e => { window.__post = "failed: " + e.name; }), true)`

	p := openPage(t, listed+"/")
	eval[bool](p.page, post)
	p.waitFor(`window.__post !== null`, "the listed page's POST to settle")
	if got := eval[string](p.page, `window.__post`); len(got) < 4 || got[:3] != "200" && got[:3] != "202" && got[:3] != "204" {
		t.Fatalf("POST from the listed page: %q", got)
	}
	if ev := watch.Expect("message"); ev.Data != `{"hello":"from the page"}` {
		t.Fatalf("published %+v", ev)
	}

	q := openPage(t, unlisted+"/")
	eval[bool](q.page, post)
	q.waitFor(`window.__post !== null`, "the unlisted page's POST to settle")
	if got := eval[string](q.page, `window.__post`); got != "failed: TypeError" {
		t.Fatalf("POST from the unlisted page: %q, want a network error (preflight refused)", got)
	}
	// Nothing was published: a later message is the next one the watcher sees.
	k.do("PUBLISH", "news", "marker")
	if ev := watch.Expect("message"); ev.Data != "marker" {
		t.Fatalf("after the refused POST the watcher got %+v", ev)
	}
}

// --auth jwt: the cookie set for Keyflux's host travels with
// withCredentials from the listed page and the stream opens; a page of an
// unlisted origin, whose request carries the same cookie (same site), is
// refused by the origin check.
func TestBrowserCORSCookieWithJWT(t *testing.T) {
	listed, unlisted := pageServer(t), pageServer(t)
	k := startKeyflux(t, nil, "--allow-origin", listed, "--auth", "jwt", "--jwt-key", corsSecret)
	stream := k.base + "/streams/channels/news"
	token := hsToken(t, time.Hour)

	p := openPage(t, listed+"/")
	p.listen(stream) // no cookie yet: 401
	p.refused(stream, 401, "the listed page's stream without a cookie")
	p.setCookie(k, "keyflux_token", token)
	p.listen(stream)
	p.waitFor(`window.__cors.events.includes("connected")`, "the listed page's stream to connect with the cookie")
	k.do("PUBLISH", "news", "for the cookie")
	p.waitFor(`window.__cors.events.includes("for the cookie")`, "the listed page to receive the message")

	q := openPage(t, unlisted+"/")
	q.setCookie(k, "keyflux_token", token)
	q.listen(stream)
	q.refused(stream, 403, "the unlisted page's stream with the cookie")
}

// keyflux.js on a page of another origin (docs/browser.md): the module
// imported from Keyflux, url and withCredentials, under --auth jwt with the
// cookie of Keyflux's host. Without the cookie the status says why (401 and
// the server's reason); once the cookie is there the client's own retry
// gets through and the channel's messages arrive.
func TestBrowserCORSKeyfluxClient(t *testing.T) {
	listed := pageServer(t)
	k := startKeyflux(t, nil, "--allow-origin", listed, "--auth", "jwt", "--jwt-key", corsSecret)
	start := `(import(` + strconv.Quote(k.base+"/keyflux.js") + `).then(({ Keyflux }) => {
		const T = window.T = { status: [], news: [] };
		T.kf = new Keyflux({ url: ` + strconv.Quote(k.base) + `, withCredentials: true });
		T.kf.on("status", (s, d) => T.status.push({ s, code: d.code ?? -1, reason: d.reason ?? "" }));
		T.kf.channel("news").on("message", (m) => T.news.push(m.data));
	}), true)`

	p := openPage(t, listed+"/")
	eval[bool](p.page, start)
	p.waitFor(`window.T?.status.some((s) => s.s === "offline" && s.code === 401 && s.reason !== "")`, "offline with 401 and the server's reason")
	p.setCookie(k, "keyflux_token", hsToken(t, time.Hour))
	p.waitFor(`T.kf.status === "live"`, "live once the cookie is there")
	k.do("PUBLISH", "news", "for the cross-origin client")
	p.waitFor(`T.news.includes("for the cross-origin client")`, "the message")
}
