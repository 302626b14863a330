package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/keyflux/keyflux/streams/testkit"
)

// chromiumPath is Debian's chromium; `go tool task test` installs it.
const chromiumPath = "/usr/bin/chromium"

// page is one real headless Chromium tab on the dashboard of k.
type page struct {
	t   *testing.T
	k   *keyflux
	ctx context.Context

	mu         sync.Mutex
	exceptions []string
	closeTab   context.CancelFunc // closes the tab (dashboardTab)
}

// openDashboard starts a fresh Chromium (its own profile) at width x height
// and loads the dashboard. Any uncaught JavaScript exception fails the test.
func openDashboard(t *testing.T, k *keyflux, width, height int) *page {
	t.Helper()
	p := startChromium(t, k, width, height)
	p.do(countEventSources, chromedp.EmulateViewport(int64(width), int64(height)), chromedp.Navigate(k.base+"/"))
	p.waitFor(`document.readyState === "complete" && document.body.dataset.app === "ready"`, "the page to load and run")
	return p
}

// startChromium starts a fresh headless Chromium (its own profile) for k's
// pages, stopped when the test ends. Any uncaught JavaScript exception in
// its page fails the test.
func startChromium(t *testing.T, k *keyflux, width, height int) *page {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Debian's chromium (go tool task chromium installs it): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The browser must be gone before Keyflux stops (registered earlier,
	// so it runs later) and before the profile folder is removed.
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	p := &page{t: t, k: k, ctx: ctx}
	if err := p.catchExceptions(); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return p
}

// catchExceptions records the page's uncaught JavaScript exceptions, which
// fail the test when it ends. Listening first also creates the page's
// target on its own context (one created by a first action would live only
// as long as that action's context).
func (p *page) catchExceptions() error {
	err := chromedp.Listen(p.ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			p.mu.Lock()
			p.exceptions = append(p.exceptions, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
			p.mu.Unlock()
		}
	})
	if err == nil {
		p.t.Cleanup(p.noExceptions)
	}
	return err
}

// countEventSources wraps the page's EventSource before its scripts run, so
// a test can see how many the page ever held open at once (window.__es.max),
// whatever the page itself reports. While window.__es.hold is set, the
// events of EventSources made meanwhile wait until __es.release(): a page
// that changes before a connection has said anything.
var countEventSources = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := cdp.Call(ctx, t, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
		Source: `(() => {
			const es = { open: 0, max: 0, made: 0, urls: [], hold: false, held: [] };
			es.release = () => {
				es.hold = false;
				for (const s of es.held.splice(0)) for (const f of s.__held.splice(0)) f();
			};
			window.__es = es;
			const Native = window.EventSource;
			window.EventSource = class extends Native {
				constructor(...args) {
					super(...args);
					this.__open = true;
					this.__held = es.hold ? [] : null;
					if (this.__held) es.held.push(this);
					es.made++;
					es.urls.push(String(args[0]));
					es.max = Math.max(es.max, ++es.open);
				}
				addEventListener(type, fn, opts) {
					super.addEventListener(type, (e) => {
						if (this.__held && es.hold) this.__held.push(() => fn.call(this, e));
						else fn.call(this, e);
					}, opts);
				}
				close() {
					if (this.__open) es.open--;
					this.__open = false;
					super.close();
				}
			};
		})()`,
	})
	return err
})

// dashboardTab opens the dashboard in another tab of p's browser: the same
// profile, so the tabs share its storage and keyflux.js's SharedWorker.
// (p, the browser's first tab, must stay open: closing it closes the
// browser.)
func (p *page) dashboardTab() *page {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	q := &page{t: p.t, k: p.k, ctx: ctx, closeTab: cancel}
	p.t.Cleanup(cancel)
	if err := q.catchExceptions(); err != nil {
		p.t.Fatalf("a new tab: %v", err)
	}
	q.do(countEventSources, chromedp.Navigate(p.k.base+"/"))
	q.waitFor(`document.readyState === "complete" && document.body.dataset.app === "ready"`, "the new tab to load and run")
	return q
}

func (p *page) noExceptions() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.exceptions {
		p.t.Errorf("uncaught exception in the page: %s", e)
	}
}

// do runs browser actions, failing the test on error.
func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition in the page until it holds: the page
// has no event to await from Go, and this is a state, not a delay.
func (p *page) waitFor(js, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](js,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		p.t.Fatalf("waiting for %s (%s): %v\nstate: %s", what, js, err, p.debug())
	}
}

func (p *page) debug() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	// Each field on its own: a page other than the dashboard lacks most.
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const $ = (id) => document.getElementById(id), all = (sel) => [...document.querySelectorAll(sel)];
		const fields = {
			T: () => window.T && Object.fromEntries(Object.entries(window.T).map(([k, v]) => [k,
				Array.isArray(v) ? v.length + ": " + v.slice(-8).join(" ")
				: v && typeof v === "object" ? (v.status ?? "") + " " + JSON.stringify(v.detail ?? "")
				: String(v)])),
			conn: () => $("conn").dataset.state + " " + $("conn-text").textContent,
			why: () => $("conn-why").textContent,
			rows: () => all("#log li").slice(0, 8).map(li => li.textContent),
			pins: () => all(".pin").map(li => li.dataset.state + " " + li.textContent),
			errors: () => all(".error").map(e => e.id + ": " + e.textContent).filter(s => !s.endsWith(": ")),
			pinStatus: () => $("pins-status").textContent,
			want: () => $("subscribe").dataset.want,
			applied: () => $("conn").dataset.log,
			eventSources: () => window.__es,
		};
		const out = {};
		for (const [k, f] of Object.entries(fields)) {
			try { out[k] = f(); } catch { /* not on this page */ }
		}
		return JSON.stringify(out);
	})()`))
	return s
}

// typeInto replaces the text of an input by typing, as a user does.
func (p *page) typeInto(sel, text string) {
	p.t.Helper()
	eval[bool](p, fmt.Sprintf(`(document.querySelector(%s).value = "", true)`, strconv.Quote(sel)))
	p.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(sel)))
}

// submit presses Enter in a field, submitting its form as a user would (a
// click lands on coordinates, which a moving layout can shift).
func (p *page) submit(sel string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS(sel), kb.Enter))
}

// pin pins key through the pin form and waits for its card.
func (p *page) pin(key string) {
	p.t.Helper()
	p.typeInto("#pin-key", key)
	p.submit("#pin-key")
	p.waitFor(fmt.Sprintf(`[...document.querySelectorAll(".pin")].some(e => e.dataset.key === %s)`, strconv.Quote(key)),
		"the pinned card of "+key)
}

// subscribe fills the form and waits until the new stream is live.
func (p *page) subscribe(pattern, events string) {
	p.t.Helper()
	p.typeInto("#pattern", pattern)
	p.typeInto("#events", events)
	p.submit("#events")
	p.waitApplied()
	if got := eval[string](p, `document.getElementById("conn").dataset.pattern`); got != pattern {
		p.t.Fatalf("the server confirmed pattern %q, want %q", got, pattern)
	}
}

// waitApplied waits until the server confirmed (its "connected" event) the
// log subscription the form asked for last.
func (p *page) waitApplied() {
	p.t.Helper()
	p.waitFor(`document.getElementById("conn").dataset.state === "live" &&
		document.getElementById("subscribe").dataset.want !== undefined &&
		document.getElementById("conn").dataset.log === document.getElementById("subscribe").dataset.want`,
		"the form's subscription to be live")
}

// oneConnection asserts that the page holds exactly one stream: the server
// counts one client, and the page itself never had an EventSource of its
// own beside it (keyflux.js keeps the connection in a SharedWorker, or in
// a leader tab: at most one).
func (p *page) oneConnection() {
	p.t.Helper()
	k := p.k
	// A refusal's check is a short-lived request: wait for the page to settle.
	testkit.Eventually(p.t, "one stream client", func() bool {
		return k.srv.sink.Clients() == 1 && metric(p.t, k, "keyflux_clients_connected") == 1
	})
	if got := eval[int](p, `window.__es.max`); got > 1 {
		p.t.Fatalf("the page had %d EventSources open at once, want at most 1", got)
	}
	if got := eval[string](p, `document.getElementById("conn").dataset.state`); got != "live" {
		p.t.Fatalf("the header says %q, want live\n%s", got, p.debug())
	}
}

// row is a CSS selector for the log row of key with event name.
func row(event, key string) string {
	return fmt.Sprintf(`#log li.event[data-event=%s][data-key=%s]`, strconv.Quote(event), strconv.Quote(key))
}

// has is a JavaScript condition: an element matches sel.
func has(sel string) string {
	return fmt.Sprintf(`document.querySelector(%s) !== null`, strconv.Quote(sel))
}

func count(sel string) string {
	return fmt.Sprintf(`document.querySelectorAll(%s).length`, strconv.Quote(sel))
}

// screenshot writes the viewport to screenshots/<name>.png at the
// repository's root (the README shows docs/dashboard.png, a copy).
func (p *page) screenshot(name string, full bool) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// colorScheme makes the page see prefers-color-scheme as dark or light.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// metric reads one unlabelled gauge or counter from /metrics.
func metric(t testing.TB, k *keyflux, name string) float64 {
	t.Helper()
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}
