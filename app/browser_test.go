package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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
}

// openDashboard starts a fresh Chromium (its own profile) at width x height
// and loads the dashboard. Any uncaught JavaScript exception fails the test.
func openDashboard(t *testing.T, k *keyflux, width, height int) *page {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the dashboard tests need Debian's chromium (go tool task chromium installs it): %v", err)
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
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			p.mu.Lock()
			p.exceptions = append(p.exceptions, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
			p.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	t.Cleanup(p.noExceptions)
	p.do(chromedp.EmulateViewport(int64(width), int64(height)), chromedp.Navigate(k.base+"/"))
	p.waitFor(`document.readyState === "complete"`, "the page to load")
	return p
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
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		conn: document.getElementById("conn").dataset.state + " " + document.getElementById("conn-text").textContent,
		rows: [...document.querySelectorAll("#log li")].slice(0, 8).map(li => li.textContent),
		pins: [...document.querySelectorAll(".pin")].map(li => li.dataset.state + " " + li.textContent),
		errors: [...document.querySelectorAll(".error")].map(e => e.id + ": " + e.textContent).filter(s => !s.endsWith(": ")),
		pinStatus: document.getElementById("pins-status").textContent,
	})`))
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
	p.waitFor(`document.getElementById("conn").dataset.state === "live" &&
		document.getElementById("conn").dataset.pattern === `+strconv.Quote(pattern), "the stream to be live")
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
