package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyflux/keyflux/streams/testkit"
)

// Tests of public/keyflux.js, the browser client, in real headless Chromium
// against a real Keyflux and Redis. The pages are Keyflux's own origin (its
// /healthz document, which runs no script of its own): a test imports
// /keyflux.js with import() in what it evaluates, as any page would.

// openClientPage starts a fresh Chromium on a same-origin page of k that
// runs no script, with window.__es counting the page's EventSources.
func openClientPage(t *testing.T, k *keyflux) *page {
	t.Helper()
	p := startChromium(t, k, 1280, 800)
	p.do(countEventSources, chromedp.Navigate(k.base+"/healthz"))
	p.waitFor(`document.readyState === "complete"`, "the page to load")
	return p
}

// jsRun evaluates an async function body in the page and returns its result.
func jsRun[T any](p *page, body string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T]("(async () => {"+body+"})()", chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", body, err)
	}
	return v
}

// TestBrowserClientSubscribes: a page subscribes a keyspace, a key watch, a
// channel and an async-iterated keyspace in one tick, with each way of
// sharing: all of them ride one connection (one stream client) and receive
// their events, parsed, with their ids and names.
func TestBrowserClientSubscribes(t *testing.T) {
	for _, share := range []string{"tabs", "leader", "none"} {
		t.Run(share, func(t *testing.T) {
			k := startKeyflux(t, keyspaceFlags, "--linger", "50ms")
			k.do("SET", "order:42", "pending")
			p := openClientPage(t, k)
			jsRun[bool](p, `
				const { Keyflux } = await import("/keyflux.js");
				const kf = new Keyflux({ share: `+strconv.Quote(share)+` });
				const got = { ks: [], watch: [], news: [], iter: [], iterDone: false, connected: [], status: [] };
				window.T = { kf, got };
				kf.on("status", (s, d) => got.status.push(s + (d.reason ? " " + d.reason : "")));
				const ks = kf.keyspace("job:*", { events: ["set", "del"] });
				ks.on("connected", () => got.connected.push("ks"));
				ks.on("set", (ev) => got.ks.push(ev));
				ks.on("del", (ev) => got.ks.push(ev));
				const w = kf.watch(["order:42"]);
				w.on("change", (key, s) => got.watch.push([key, s]));
				const ch = kf.channel("news").on("message", (m) => got.news.push(m));
				ch.on("connected", () => got.connected.push("news"));
				const it = kf.keyspace("it:*", { events: ["set"] });
				it.on("connected", () => got.connected.push("it"));
				(async () => {
					for await (const ev of it) got.iter.push(ev.name + " " + ev.key);
					got.iterDone = true;
				})();
				Object.assign(T, { ks, w, ch, it });
				return true`)
			p.waitFor(`T.got.connected.length === 3 && T.w.get("order:42") !== undefined && T.kf.status === "live"`,
				"every subscription to be live")
			if got := eval[string](p, `T.w.get("order:42").value`); got != "pending" {
				t.Fatalf("the watch's snapshot holds %q, want pending", got)
			}
			k.do("SET", "job:1", "a")
			k.do("DEL", "job:1")
			k.do("SET", "order:42", "paid")
			k.do("PUBLISH", "news", "hello")
			k.do("SET", "it:1", "x")
			k.do("SET", "it:2", "y")
			p.waitFor(`T.got.ks.length === 2 && T.got.news.length === 1 && T.got.iter.length === 2 &&
				T.w.get("order:42").value === "paid"`, "every event")
			ev := eval[map[string]any](p, `T.got.ks[0]`)
			if ev["name"] != "set" || ev["key"] != "job:1" || ev["event"] != "set" || ev["id"] == "" {
				t.Fatalf("first keyspace event %v, want set job:1 with an id", ev)
			}
			if got := eval[string](p, `T.got.ks[1].name + " " + T.got.ks[1].key`); got != "del job:1" {
				t.Fatalf("second keyspace event %q", got)
			}
			if got := eval[string](p, `T.got.news[0].name + " " + T.got.news[0].data`); got != "message hello" {
				t.Fatalf("channel message %q", got)
			}
			if got := eval[string](p, `T.got.iter.join(",")`); got != "set it:1,set it:2" {
				t.Fatalf("iterated %q", got)
			}
			if got := eval[string](p, `T.got.watch.map(([k, s]) => k + "=" + s.value).join(",")`); got != "order:42=pending,order:42=paid" {
				t.Fatalf("watch changes %q", got)
			}
			testkit.Eventually(t, "one stream client", func() bool {
				return metric(t, k, "keyflux_clients_connected") == 1
			})
			if share == "none" {
				// Four subscriptions made in one tick cost one request.
				if made := eval[int](p, `window.__es.made`); made != 1 {
					t.Fatalf("the page made %d EventSources, want 1", made)
				}
			}
			// Closing a subscription ends its iteration; the others go on
			// over the reopened connection.
			eval[bool](p, `(T.it.close(), true)`)
			p.waitFor(`T.got.iterDone`, "the iteration to end")
			k.do("SET", "job:2", "b")
			p.waitFor(`T.got.ks.length === 3`, "an event after the connection changed")
			eval[bool](p, `(T.kf.close(), true)`)
			testkit.Eventually(t, "no stream client", func() bool {
				return metric(t, k, "keyflux_clients_connected") == 0
			})
		})
	}
}

// TestBrowserClientUntil: until resolves at once on a key that already
// matches, shortly after the SET that makes it match, and rejects with
// TimeoutError and AbortError; after each, no stream is left behind.
func TestBrowserClientUntil(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "50ms")
	baseline := metric(t, k, "keyflux_streams_active")
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }) };
		// settle records how a promise ended, for the test to read.
		T.settle = (name, promise) => {
			T[name] = { done: false };
			promise.then(
				(s) => Object.assign(T[name], { done: true, ok: true, value: s.value, at: Date.now() }),
				(e) => Object.assign(T[name], { done: true, ok: false, error: e.name, message: e.message, isError: e instanceof Error }));
		};
		return true`)
	noStreamsLeft := func(what string) {
		t.Helper()
		testkit.Eventually(t, "streams back at the baseline after "+what, func() bool {
			return metric(t, k, "keyflux_streams_active") == baseline && metric(t, k, "keyflux_clients_connected") == 0
		})
	}

	// Already matching: resolves from the snapshot.
	k.do("SET", "job:1", "done")
	start := time.Now()
	if got := jsRun[string](p, `return (await T.kf.until("job:1", (s) => s.value === "done")).value`); got != "done" {
		t.Fatalf("until resolved with %q", got)
	}
	t.Logf("until on a matching key resolved in %v", time.Since(start))
	noStreamsLeft("an already matching key")

	// A later SET: the watch is live once its stream exists.
	k.do("SET", "job:2", "running")
	eval[bool](p, `(T.settle("later", T.kf.until("job:2", (s) => s.value === "done", { timeout: 20000 })), true)`)
	testkit.Eventually(t, "the watch's stream", func() bool { return metric(t, k, "keyflux_streams_active") > baseline })
	k.do("SET", "job:2", "still running") // an update that does not match
	setAt := time.Now()
	k.do("SET", "job:2", "done")
	p.waitFor(`T.later.done`, "until to settle")
	if !eval[bool](p, `T.later.ok && T.later.value === "done"`) {
		t.Fatalf("until: %s", eval[string](p, `JSON.stringify(T.later)`))
	}
	took := time.Duration(eval[float64](p, `T.later.at`)-float64(setAt.UnixMilli())) * time.Millisecond
	t.Logf("until resolved %v after the matching SET", took)
	if took > time.Second { // 100 ms expected; loose for loaded machines and -race
		t.Errorf("until resolved %v after the SET", took)
	}
	noStreamsLeft("a later SET")

	// Timeout.
	eval[bool](p, `(T.settle("timeout", T.kf.until("job:3", (s) => s.exists, { timeout: 300 })), true)`)
	p.waitFor(`T.timeout.done`, "until to time out")
	if got := eval[string](p, `JSON.stringify(T.timeout)`); !eval[bool](p, `!T.timeout.ok && T.timeout.error === "TimeoutError" && T.timeout.isError`) {
		t.Fatalf("until with a timeout: %s", got)
	}
	noStreamsLeft("a timeout")

	// Abort, once the watch is live.
	eval[bool](p, `(T.ctl = new AbortController(), T.settle("abort", T.kf.until("job:4", (s) => s.exists, { signal: T.ctl.signal })), true)`)
	testkit.Eventually(t, "the watch's stream", func() bool { return metric(t, k, "keyflux_streams_active") > baseline })
	eval[bool](p, `(T.ctl.abort(), true)`)
	p.waitFor(`T.abort.done`, "until to abort")
	if got := eval[string](p, `JSON.stringify(T.abort)`); !eval[bool](p, `!T.abort.ok && T.abort.error === "AbortError" && T.abort.isError`) {
		t.Fatalf("until aborted: %s", got)
	}
	noStreamsLeft("an abort")

	// An already aborted signal subscribes nothing.
	if got := jsRun[string](p, `
		const ctl = new AbortController();
		ctl.abort();
		try { await T.kf.until("job:5", () => true, { signal: ctl.signal }); return "resolved"; }
		catch (e) { return e.name; }`); got != "AbortError" {
		t.Fatalf("until with an aborted signal: %s", got)
	}
	if made := eval[int](p, `window.__es.made`); made != 4 {
		t.Errorf("the page made %d EventSources, want 4 (one per until that waited)", made)
	}
	noStreamsLeft("an aborted signal")
}

// TestBrowserClientGetAndRefusals: get reads a key's state, and rejects with
// the server's message; a subscription the server refuses gets the reason
// on "error" while the others on the connection carry on.
func TestBrowserClientGetAndRefusals(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--expose", "order:,job:")
	k.do("SET", "order:1", "paid")
	p := openClientPage(t, k)
	got := jsRun[map[string]any](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }) };
		const state = await T.kf.get("order:1");
		const missing = await T.kf.get("order:2");
		let refused = null;
		try { await T.kf.get("secret:1"); } catch (e) { refused = { name: e.name, message: e.message, status: e.status }; }
		return { state, missing, refused }`)
	state := got["state"].(map[string]any)
	if state["exists"] != true || state["value"] != "paid" || state["type"] != "string" || state["key"] != "order:1" {
		t.Fatalf("get order:1 = %v", state)
	}
	if missing := got["missing"].(map[string]any); missing["exists"] != false {
		t.Fatalf("get order:2 = %v", missing)
	}
	refused, _ := got["refused"].(map[string]any)
	_, want := k.get("/api/keys/secret:1")
	if refused == nil || refused["message"] != want["error"] || refused["status"] != float64(403) {
		t.Fatalf("get secret:1 rejected with %v, want the server's %q (403)", refused, want["error"])
	}

	// A refused sub among good ones.
	jsRun[bool](p, `
		T.got = { err: null, jobs: [], iterErr: null };
		T.bad = T.kf.keyspace("secret:*");
		T.bad.on("error", (e) => { T.got.err = { message: e.message, status: e.status }; });
		(async () => { try { for await (const _ of T.bad) { /* none */ } } catch (e) { T.got.iterErr = e.message; } })();
		T.good = T.kf.keyspace("job:*", { events: ["set"] }).on("set", (ev) => T.got.jobs.push(ev.key));
		T.good.on("connected", () => { T.got.live = true; });
		return true`)
	p.waitFor(`T.got.err !== null && T.got.live === true && T.got.iterErr !== null`, "the refusal and the good sub")
	msg := eval[string](p, `T.got.err.message`)
	if !strings.Contains(msg, "secret:*") || eval[int](p, `T.got.err.status`) != 403 || eval[string](p, `T.got.iterErr`) != msg {
		t.Fatalf("refusal %s, iteration threw %q", eval[string](p, `JSON.stringify(T.got.err)`), eval[string](p, `T.got.iterErr`))
	}
	k.do("SET", "job:1", "x")
	p.waitFor(`T.got.jobs.join() === "job:1"`, "the good sub's event")
}

// TestBrowserClientLimited: refused by a limit, the status says "limited"
// with the server's reason, and the client comes back by itself, live, when
// the limit allows it again.
func TestBrowserClientLimited(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--max-clients", "1")
	hog := k.open("/streams/keyspace?pattern=hog:*")
	hog.Expect("connected")
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }), status: [] };
		T.kf.on("status", (s, d) => T.status.push({ s, ...d, at: Date.now() }));
		T.kf.keyspace("job:*", { events: ["set"] }).on("set", (ev) => { T.got = ev.key; });
		return true`)
	p.waitFor(`T.status.some((x) => x.s === "limited")`, "status limited")
	lim := eval[map[string]any](p, `T.status.find((x) => x.s === "limited")`)
	if lim["code"] != float64(503) || lim["reason"] == "" || lim["retryAt"] == nil {
		t.Fatalf("limited with %v, want 503, a reason and a retry time", lim)
	}
	hog.Close()
	p.waitFor(`T.kf.status === "live"`, "the client to come back")
	k.do("SET", "job:1", "x")
	p.waitFor(`T.got === "job:1"`, "an event after coming back")
	// Retry-After is honoured: no attempt before the time the status gave.
	if early := eval[float64](p, `T.status.find((x) => x.s === "limited").retryAt - T.status.find((x) => x.s === "live").at`); early > 50 {
		t.Fatalf("live %v ms before the retry time the server asked for", early)
	}
}

// TestBrowserClientManySubs: 200 subscriptions made in one tick cost one
// request: their URL would pass 4,000 bytes, so the client names them as a
// set (POST /api/sets) and opens /streams?set=<id>; every sub gets its events.
func TestBrowserClientManySubs(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }), got: new Set(), live: new Set() };
		for (let i = 0; i < 200; i++) {
			const s = T.kf.keyspace("many:" + i, { events: ["set"] });
			s.on("connected", () => T.live.add(i));
			s.on("set", (ev) => T.got.add(ev.key));
		}
		return true`)
	p.waitFor(`T.live.size === 200`, "200 subs live")
	for i := range 200 {
		k.do("SET", fmt.Sprintf("many:%d", i), "x")
	}
	p.waitFor(`T.got.size === 200`, "an event on each of 200 subs")
	if made, url := eval[int](p, `window.__es.made`), eval[string](p, `window.__es.urls[0]`); made != 1 || !strings.Contains(url, "/streams?set=") {
		t.Fatalf("the page made %d EventSources, the first for %.100s; want one, for a set", made, url)
	}
	if n := metric(t, k, "keyflux_clients_connected"); n != 1 {
		t.Fatalf("%v stream clients, want 1", n)
	}
}

// TestBrowserClientModuleServed: /keyflux.js is JavaScript, cacheable, with a
// strong ETag that a revalidation answers with 304; streams have no ETag.
func TestBrowserClientModuleServed(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	get := func(path string, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, k.base+path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("/keyflux.js")
	etag := resp.Header.Get("ETag")
	switch {
	case resp.StatusCode != 200:
		t.Fatalf("GET /keyflux.js: %d", resp.StatusCode)
	case resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8":
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	case !strings.HasPrefix(etag, `"`) || len(etag) < 10:
		t.Fatalf("ETag %q, want a strong one", etag)
	case !strings.Contains(resp.Header.Get("Cache-Control"), "max-age="):
		t.Fatalf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	case !strings.Contains(string(body), "export class Keyflux"):
		t.Fatalf("body is not the module: %.100s", body)
	}
	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		resp, body = get("/keyflux.js", "If-None-Match", inm)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") != etag {
			t.Fatalf("If-None-Match %s: %d with %d bytes, ETag %q", inm, resp.StatusCode, len(body), resp.Header.Get("ETag"))
		}
	}
	if resp, _ = get("/keyflux.js", "If-None-Match", `"other"`); resp.StatusCode != 200 {
		t.Fatalf("If-None-Match of another tag: %d", resp.StatusCode)
	}
	if resp, body = get("/keyflux.d.ts"); resp.StatusCode != 200 || !strings.Contains(string(body), "declare class Keyflux") {
		t.Fatalf("GET /keyflux.d.ts: %d", resp.StatusCode)
	}
	s := k.open("/streams/keyspace?pattern=x:*")
	s.Expect("connected")
	if h := s.Header("ETag"); h != "" {
		t.Fatalf("a stream has ETag %q", h)
	}
}

// newTab opens another tab of p's browser on the same page; close closes it
// as a user does.
func (p *page) newTab() (*page, context.CancelFunc) {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	tab := &page{t: p.t, k: p.k, ctx: ctx}
	if err := tab.catchExceptions(); err != nil {
		p.t.Fatalf("opening a tab: %v", err)
	}
	tab.do(countEventSources, chromedp.Navigate(p.k.base+"/healthz"))
	tab.waitFor(`document.readyState === "complete"`, "the tab to load")
	return tab, cancel
}

// TestBrowserClientTabs: two tabs share one connection; when the tab that
// holds it (the leader; with a SharedWorker, the worker outlives it) closes,
// the other keeps receiving with nothing lost or repeated across the
// handover, and the closed tab's subscriptions are dropped.
func TestBrowserClientTabs(t *testing.T) {
	for _, share := range []string{"tabs", "leader"} {
		t.Run(share, func(t *testing.T) {
			k := startKeyflux(t, keyspaceFlags, "--linger", "2s")
			p := openClientPage(t, k) // an idle first tab: closing it would close the browser
			setup := `
				const { Keyflux } = await import("/keyflux.js");
				window.T = { kf: new Keyflux({ share: ` + strconv.Quote(share) + ` }), seq: [], live: false };
				T.s = T.kf.keyspace("seq:*", { events: ["set"] });
				T.s.on("set", (ev) => T.seq.push(Number(ev.key.slice(4))));
				T.s.on("connected", () => { T.live = true; });
				return true`
			a, closeA := p.newTab()
			jsRun[bool](a, setup)
			a.waitFor(`T.live`, "tab A live")
			b, closeB := p.newTab()
			defer closeB()
			jsRun[bool](b, setup)
			b.waitFor(`T.live`, "tab B live")
			testkit.Eventually(t, "one stream client for two tabs", func() bool {
				return metric(t, k, "keyflux_clients_connected") == 1
			})
			// Where the connection lives: in the SharedWorker (no EventSource in
			// either tab), or in the leader, tab A.
			ma, mb := eval[int](a, `window.__es.made`), eval[int](b, `window.__es.made`)
			if (share == "tabs") != (ma == 0) || mb != 0 {
				t.Fatalf("with share %s, tabs A and B made %d and %d EventSources", share, ma, mb)
			}
			topics := metric(t, k, "keyflux_streams_active")
			for i := 1; i <= 10; i++ {
				k.do("SET", fmt.Sprintf("seq:%d", i), "x")
			}
			a.waitFor(`T.seq.length === 10`, "tab A's events")
			closeA()
			for i := 11; i <= 40; i++ {
				k.do("SET", fmt.Sprintf("seq:%d", i), "x")
			}
			b.waitFor(`T.seq.length >= 40`, "tab B's events")
			want := make([]string, 40)
			for i := range want {
				want[i] = strconv.Itoa(i + 1)
			}
			if got := eval[string](b, `T.seq.join(",")`); got != strings.Join(want, ",") {
				t.Fatalf("tab B received %s", got)
			}
			testkit.Eventually(t, "tab A's subscription dropped", func() bool {
				return metric(t, k, "keyflux_streams_active") == topics-1 && metric(t, k, "keyflux_clients_connected") == 1
			})
		})
	}
}

// TestBrowserClientRestart: Keyflux restarts under a page: the status goes
// offline, then live; the keyspace subscriber gets its reset and the key
// watch holds the value written while Keyflux was down.
func TestBrowserClientRestart(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	k.do("SET", "order:1", "before")
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }), status: [], resets: [], jobs: [] };
		T.kf.on("status", (s) => T.status.push(s));
		T.ks = T.kf.keyspace("job:*", { events: ["set"] });
		T.ks.on("reset", (r) => T.resets.push(r.reason)).on("set", (ev) => T.jobs.push(ev.key));
		T.w = T.kf.watch("order:1");
		return true`)
	p.waitFor(`T.kf.status === "live" && T.w.get("order:1")?.value === "before"`, "live")
	addr := k.srv.addr()
	k.shutdown()
	p.waitFor(`T.kf.status === "offline"`, "offline")
	k.do("SET", "order:1", "during")
	k2 := startKeyfluxOn(t, k.redis, "--listen", addr)
	p.waitFor(`T.kf.status === "live" && T.resets.length > 0 && T.w.get("order:1")?.value === "during"`, "live again")
	k2.do("SET", "job:1", "x")
	p.waitFor(`T.jobs.join() === "job:1"`, "an event after the restart")
	t.Logf("statuses %s, resets %s", eval[string](p, `T.status.join(" ")`), eval[string](p, `T.resets.join(" ")`))
}

// TestBrowserClientToken: with --auth jwt, the token callback gives each
// connection its token (and get its Authorization); when the token expires
// the stream's auth-expired makes the client ask for a new one and resume,
// with nothing lost. Without credentials the status says why.
func TestBrowserClientToken(t *testing.T) {
	iss := newIssuer(t)
	k := startKeyflux(t, keyspaceFlags, append(iss.flags(), "--linger", "1m")...)
	short := claims(0)
	short["exp"] = time.Now().Add(3 * time.Second).Truncate(time.Second).Unix() // 2 to 3 s
	k.do("SET", "job:42", "queued")
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { tokens: [`+strconv.Quote(iss.sign(short))+`, `+strconv.Quote(iss.sign(claims(time.Hour)))+`],
			asked: 0, status: [], keys: [] };
		T.kf = new Keyflux({ share: "none", token: async () => { T.asked++; return T.tokens.length > 1 ? T.tokens.shift() : T.tokens[0]; } });
		T.kf.on("status", (s, d) => T.status.push(s + (d.reason ? " " + d.reason : "")));
		T.kf.keyspace("user:42:*", { events: ["set"] }).on("set", (ev) => T.keys.push(ev.key));
		T.anon = new Keyflux({ share: "none" });
		T.anon.keyspace("user:42:*");
		return true`)
	p.waitFor(`T.kf.status === "live"`, "live with a token")
	if got := jsRun[string](p, `return (await T.kf.get("job:42")).value`); got != "queued" {
		t.Fatalf("get with a token: %q", got)
	}
	k.do("SET", "user:42:a", "1")
	p.waitFor(`T.keys.length === 1`, "an event")
	p.waitFor(`T.status.includes("connecting token-expired")`, "auth-expired")
	k.do("SET", "user:42:b", "2")
	p.waitFor(`T.kf.status === "live" && T.keys.length === 2`, "live again with a new token")
	if got := eval[string](p, `T.keys.join()`); got != "user:42:a,user:42:b" {
		t.Fatalf("events %s", got)
	}
	if asked := eval[int](p, `T.asked`); asked < 3 {
		t.Fatalf("the token callback was asked %d times, want a token for each connection and for get", asked)
	}
	p.waitFor(`T.anon.status === "offline"`, "the client without credentials to say why")
	if got := eval[string](p, `T.anon.detail.code + " " + T.anon.detail.reason`); !strings.HasPrefix(got, "401 no credentials") {
		t.Fatalf("without credentials: %s", got)
	}
}

// TestBrowserClientChangesLoseNothing: subscriptions added and closed while
// events flow reopen the page's one connection; the subscription that was
// there all along gets every event once, in order, and no reset: added
// subs go fresh, and with --journal the position's other parts carry over.
func TestBrowserClientChangesLoseNothing(t *testing.T) {
	for _, journal := range []bool{false, true} {
		name, flags := "process ids", []string{}
		if journal {
			name, flags = "journal positions", []string{"--journal"}
		}
		t.Run(name, func(t *testing.T) {
			k := startKeyflux(t, keyspaceFlags, flags...)
			p, s := seqPage(t, k)
			write := func(count int) { s.write(count, false) }
			write(10)
			eval[bool](p, `(T.b = T.kf.keyspace("other:*"), T.c = T.kf.channel("news"), T.w = T.kf.watch("order:1"), true)`)
			write(10)
			p.waitFor(`T.w.get("order:1") !== undefined`, "the added watch's snapshot")
			write(10)
			eval[bool](p, `(T.b.close(), T.w.close(), true)`)
			write(10)
			eval[bool](p, `(T.c.close(), T.d = T.kf.channel("more"), true)`)
			write(10)
			p.waitFor(`T.seq.length >= 50`, "every event")
			s.check()
		})
	}
}

// TestBrowserClientChangesBeforeConnected: with --journal, a page changes
// its subs again before the connection of its last change has said
// anything (its events held back): the next connection still resumes the
// kept sub from its part of the position, and a sub left alone resumes by
// its plain entry id. (A page under load once carried the whole old
// position over, and the kept sub got reset unknown-id.)
func TestBrowserClientChangesBeforeConnected(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--journal")
	p, s := seqPage(t, k)
	write := func(count int) { s.write(count, true) }
	write(5)
	eval[bool](p, `(T.b = T.kf.keyspace("other:*"), T.c = T.kf.channel("news"), true)`)
	p.waitFor(`__es.made === 2 && __es.open === 1`, "the second connection")
	write(5) // its ids are positions of three parts
	eval[bool](p, `(__es.hold = true, T.b.close(), true)`)
	p.waitFor(`__es.made === 3`, "the third connection")
	eval[bool](p, `(T.c.close(), T.d = T.kf.channel("more"), true)`)
	p.waitFor(`__es.made === 4`, "the fourth connection")
	eval[bool](p, `(__es.release(), true)`)
	write(5)
	eval[bool](p, `(T.d.close(), true)`)
	p.waitFor(`__es.made === 5 && __es.open === 1`, "the fifth connection, of one sub")
	write(5)
	s.check()
}

// seqPage opens a client page whose first subscription, T.a, records the
// numbers of the seq:<n> keys set (T.seq) and its resets (T.resets).
func seqPage(t *testing.T, k *keyflux) (*page, *seqWriter) {
	t.Helper()
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }), seq: [], resets: [] };
		T.a = T.kf.keyspace("seq:*", { events: ["set"] });
		T.a.on("set", (ev) => T.seq.push(Number(ev.key.slice(4)))).on("reset", (r) => T.resets.push(r.reason));
		T.a.on("connected", () => { T.live = true; });
		return true`)
	p.waitFor(`T.live`, "live")
	return p, &seqWriter{t: t, k: k, p: p}
}

// seqWriter sets seq:1, seq:2, ... and checks what T.a received.
type seqWriter struct {
	t *testing.T
	k *keyflux
	p *page
	n int
}

// write sets the next count keys; wait: until the page has them all.
func (s *seqWriter) write(count int, wait bool) {
	for range count {
		s.n++
		s.k.do("SET", fmt.Sprintf("seq:%d", s.n), "x")
	}
	if wait {
		s.p.waitFor(fmt.Sprintf(`T.seq.length >= %d`, s.n), fmt.Sprintf("%d events", s.n))
	}
}

// check: T.a received every key set, once, in order, and no reset.
func (s *seqWriter) check() {
	s.t.Helper()
	want := make([]string, s.n)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	if got := eval[string](s.p, `T.seq.join(",")`); got != strings.Join(want, ",") {
		s.t.Fatalf("the kept subscription received %s", got)
	}
	if resets := eval[string](s.p, `T.resets.join(" ")`); resets != "" {
		s.t.Fatalf("the kept subscription got resets: %s (urls %s)", resets, eval[string](s.p, `__es.urls.join("\n")`))
	}
}

// TestBrowserClientLog: a Redis Stream's entries arrive with their fields,
// named "entry" or by their event field, from the requested start.
func TestBrowserClientLog(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	k.do("XADD", "audit:1", "*", "user", "ann")
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }), got: [] };
		T.kf.log("audit:1", { from: "0" })
			.on("entry", (e) => T.got.push(e.name + " " + e.user))
			.on("order-paid", (e) => T.got.push(e.name + " " + e.order));
		return true`)
	p.waitFor(`T.got.length === 1`, "the first entry")
	k.do("XADD", "audit:1", "*", "event", "order-paid", "order", "42")
	p.waitFor(`T.got.length === 2`, "the second entry")
	if got := eval[string](p, `T.got.join()`); got != "entry ann,order-paid 42" {
		t.Fatalf("entries %s", got)
	}
}

// TestBrowserClientSplits: more subscriptions with ids of their own (Redis
// Streams) than one connection may resume: the client splits them over as
// few connections as the server allows, and every one gets its entries.
func TestBrowserClientSplits(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	for i := range 40 {
		k.do("XADD", fmt.Sprintf("audit:%d", i), "*", "n", strconv.Itoa(i))
	}
	p := openClientPage(t, k)
	jsRun[bool](p, `
		const { Keyflux } = await import("/keyflux.js");
		window.T = { kf: new Keyflux({ share: "none" }), got: new Set() };
		for (let i = 0; i < 40; i++) T.kf.log("audit:" + i, { from: "0" }).on("entry", (e) => T.got.add(e.n));
		return true`)
	p.waitFor(`T.got.size === 40 && T.kf.status === "live"`, "an entry on each of 40 subs")
	testkit.Eventually(t, "two stream clients", func() bool { return metric(t, k, "keyflux_clients_connected") == 2 })
}

// TestBrowserClientTenTabs: ten tabs of one page, each with its own
// keyspace, key watch and channel subscriptions, share ONE server
// connection and each gets its own events; when the tab that opened first
// (the leader, in leader mode) closes, the other nine keep receiving a
// sequence of writes with nothing lost or repeated.
//
// Every change reopens the shared connection; it rejoins live topics at
// the price of one stream (a combined stream pays for the topics it
// starts), so ten tabs and a handover fit in the default rate, with a short
// --linger: nothing waits for a Retry-After.
func TestBrowserClientTenTabs(t *testing.T) {
	for _, share := range []string{"tabs", "leader"} {
		t.Run(share, func(t *testing.T) {
			k := startKeyflux(t, keyspaceFlags, "--linger", "2s")
			p := openClientPage(t, k) // an idle first tab: closing it would close the browser
			const n = 10
			tabs := make([]*page, n)
			closers := make([]context.CancelFunc, n)
			for i := range n {
				tabs[i], closers[i] = p.newTab()
				defer closers[i]()
				jsRun[bool](tabs[i], fmt.Sprintf(`
					const { Keyflux } = await import("/keyflux.js");
					const kf = new Keyflux({ share: %q });
					window.T = { kf, seq: [], mine: [], msgs: [], ready: 0, resets: [] };
					T.s = kf.keyspace("seq:*", { events: ["set"] });
					T.s.on("set", (ev) => T.seq.push(Number(ev.key.slice(4)))).on("connected", () => T.ready++);
					T.s.on("reset", (r) => T.resets.push(r.reason));
					T.k = kf.keyspace("tab%d:*");
					T.k.on("set", (ev) => T.mine.push(ev.key)).on("connected", () => T.ready++);
					T.w = kf.watch("w%d");
					T.c = kf.channel("ch%d");
					T.c.on("message", (m) => T.msgs.push(m.data)).on("connected", () => T.ready++);
					return true`, share, i, i, i))
			}
			for i, tab := range tabs {
				tab.waitFor(`T.ready >= 3 && T.w.get("w`+strconv.Itoa(i)+`") !== undefined`, "tab "+strconv.Itoa(i)+" live")
			}
			testkit.Eventually(t, "one stream client for ten tabs", func() bool {
				return metric(t, k, "keyflux_clients_connected") == 1
			})
			for i := range n {
				k.do("SET", fmt.Sprintf("tab%d:x", i), "1")
				k.do("SET", fmt.Sprintf("w%d", i), fmt.Sprintf("v%d", i))
				k.do("PUBLISH", fmt.Sprintf("ch%d", i), fmt.Sprintf("hello %d", i))
			}
			for i, tab := range tabs {
				want := fmt.Sprintf(`{"mine":["tab%d:x"],"msgs":["hello %d"],"w":"v%d"}`, i, i, i)
				tab.waitFor(`JSON.stringify({mine: T.mine, msgs: T.msgs, w: T.w.get("w`+strconv.Itoa(i)+`")?.value}) === `+strconv.Quote(want),
					"tab "+strconv.Itoa(i)+"'s own events")
			}
			for i := 1; i <= 10; i++ {
				k.do("SET", fmt.Sprintf("seq:%d", i), "x")
			}
			for i, tab := range tabs {
				tab.waitFor(`T.seq.length >= 10`, "tab "+strconv.Itoa(i)+"'s first writes")
			}
			closers[0]() // the tab that opened first: in leader mode, the leader
			for i := 11; i <= 40; i++ {
				k.do("SET", fmt.Sprintf("seq:%d", i), "x")
			}
			want := make([]string, 40)
			for i := range want {
				want[i] = strconv.Itoa(i + 1)
			}
			for i, tab := range tabs[1:] {
				tabWaitFor(tab, `T.seq.length >= 40`, "tab "+strconv.Itoa(i+1)+" after the handover",
					`"seq " + T.seq.join(",") + "; status " + T.kf.status + " " + JSON.stringify(T.kf.detail) + "; resets " + T.resets.join()`)
				if got := eval[string](tab, `T.seq.join(",")`); got != strings.Join(want, ",") {
					t.Fatalf("tab %d received %s", i+1, got)
				}
				if resets := eval[string](tab, `T.resets.join()`); resets != "" {
					t.Fatalf("tab %d got resets: %s", i+1, resets)
				}
			}
			testkit.Eventually(t, "still one stream client", func() bool {
				return metric(t, k, "keyflux_clients_connected") == 1
			})
		})
	}
}

// tabWaitFor waits until js holds in tab, else fails with what the page
// says of itself (state, an expression).
func tabWaitFor(tab *page, js, what, state string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		tab.t.Fatalf("waiting for %s (%s): %v\nstate: %s", what, js, err, eval[string](tab, state))
	}
}
