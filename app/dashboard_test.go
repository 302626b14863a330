package main

import (
	"github.com/chromedp/chromedp"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The dashboard, driven in real headless Chromium against a real Keyflux and
// a real redis-server.

func TestDashboardSubscribeShowsRows(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	p := openDashboard(t, k, 1280, 900)
	p.subscribe("user:*", "")

	k.do("SET", "order:1", "x") // outside the pattern
	k.do("SET", "user:1", "ada")
	k.do("HSET", "user:2", "name", "grace")
	p.waitFor(has(row("set", "user:1"))+" && "+has(row("hset", "user:2")), "rows for user:1 and user:2")
	if eval[int](p, count(`#log li[data-key="order:1"]`)) != 0 {
		t.Fatal("a key outside the pattern was listed")
	}
	if first := eval[string](p, `document.querySelector("#log li.event").dataset.key`); first != "user:2" {
		t.Fatalf("first row is %q, want the newest (user:2)", first)
	}
	if id := eval[string](p, `document.getElementById("last-id").textContent`); id == "none" || !strings.Contains(id, "-") {
		t.Fatalf("last event id shown as %q", id)
	}
	p.waitFor(has(`#rate-legend li[data-event="hset"]`), "the rate legend to list hset")

	// Pause holds rows back, resume shows them, clear empties the list.
	p.click("#pause")
	k.do("SET", "user:3", "linus")
	p.waitFor(`document.getElementById("pause").textContent === "Resume (1)"`, "one event waiting while paused")
	if eval[int](p, count(row("set", "user:3"))) != 0 {
		t.Fatal("a row appeared while paused")
	}
	p.click("#pause")
	p.waitFor(has(row("set", "user:3")), "the held row after resume")
	p.click("#clear")
	p.waitFor(count("#log li")+" === 0", "an empty list after clear")
	k.do("SET", "user:4", "ken")
	p.waitFor(has(row("set", "user:4")), "rows after clear")
}

func TestDashboardPinnedKeyValueAndExpiry(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	p := openDashboard(t, k, 1280, 900)
	p.subscribe("nothing:*", "")
	const key, gone = "sensor:kitchen", "session:1"
	k.do("SET", key, "20.5")
	k.do("SET", gone, "x")
	p.pin(key)
	p.pin(gone)
	pin := `document.querySelector('.pin[data-key="` + key + `"]')`
	p.waitFor(pin+`?.dataset.state === "present" && `+pin+`.querySelector(".pin-value").textContent === "20.5"`,
		"the pinned key's value")
	if ttl := eval[string](p, pin+`.querySelector(".ttl").textContent`); ttl != "no TTL" {
		t.Fatalf("TTL shown as %q, want no TTL", ttl)
	}
	// Both pins share one stream, beside the log's: two connections.
	eventually(t, "two streams (log and pins)", func() bool { return k.srv.sink.Clients() == 2 })
	if n := eval[string](p, `document.getElementById("connections").textContent`); n != "2" {
		t.Fatalf("the page says it uses %s connections, want 2", n)
	}

	k.do("SET", key, "21.0", "PX", "2500")
	p.waitFor(pin+`.querySelector(".pin-value").textContent === "21.0" && `+pin+`.classList.contains("flash") && `+
		pin+`.querySelector(".ttl").textContent.startsWith("TTL ")`, "the updated value, flashing, with a TTL counting down")
	p.waitFor(pin+`.dataset.state === "expired" && `+pin+`.querySelector(".mark").textContent.startsWith("expired at")`,
		"the expired mark")

	other := `document.querySelector('.pin[data-key="` + gone + `"]')`
	k.do("DEL", gone)
	p.waitFor(other+`.dataset.state === "deleted"`, "the deleted mark")

	k.do("HSET", key, "celsius", "19")
	p.waitFor(pin+`.dataset.state === "present" && `+pin+`.querySelector(".type").textContent === "hash" && `+
		pin+`.querySelector(".pin-value").textContent.includes('"celsius": "19"')`, "a recreated key as a hash")
	if k.srv.sink.Clients() != 2 {
		t.Fatalf("%d streams open, want 2", k.srv.sink.Clients())
	}
}

func TestDashboardReconnectsAndResumes(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--retry", "1500ms", "--linger", "1m")
	p := openDashboard(t, k, 1280, 900)
	p.subscribe("job:*", "")
	k.do("SET", "job:1", "a")
	p.waitFor(has(row("set", "job:1")), "the first row")
	k.do("SET", "cfg:mode", "one")
	p.pin("cfg:mode")
	pinned := `document.querySelector('.pin[data-key="cfg:mode"] .pin-value').textContent`
	p.waitFor(pinned+` === "one"`, "the pinned value")
	eventually(t, "two streams (log and pins)", func() bool { return k.srv.sink.Clients() == 2 })

	if n := k.srv.sink.Drop("test: network blip"); n != 2 {
		t.Fatalf("dropped %d streams, want 2", n)
	}
	p.waitFor(`document.getElementById("conn").dataset.state === "reconnecting" &&
		/^Reconnecting in \ds$/.test(document.getElementById("conn-text").textContent)`, "reconnecting with a countdown")
	k.do("SET", "job:2", "b") // while the page is away: the lingering topic keeps it
	k.do("SET", "cfg:mode", "two")
	p.waitFor(`document.getElementById("conn").dataset.state === "live"`, "live again")
	p.waitFor(has(row("set", "job:2")), "the event written while away")
	p.waitFor(pinned+` === "two"`, "the pinned value changed while away")
	k.do("SET", "job:3", "c")
	p.waitFor(has(row("set", "job:3")), "live events after the reconnect")
	for _, key := range []string{"job:1", "job:2", "job:3"} {
		if n := eval[int](p, count(row("set", key))); n != 1 {
			t.Fatalf("%d rows for %s, want exactly one", n, key)
		}
	}
	if eval[bool](p, `!document.getElementById("notice").hidden`) {
		t.Fatal("a reset notice after a clean resume")
	}

	// A Redis restart can lose events: the page says so.
	if err := k.redis.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.waitFor(`!document.getElementById("notice").hidden &&
		document.getElementById("notice").dataset.reason === "upstream-gap" &&
		document.querySelector("#log li.marker") !== null`, "a visible reset notice")
	k.do("SET", "job:4", "d")
	p.waitFor(has(row("set", "job:4")), "events after the reset")
}

func TestDashboardShowsHostileDataAsText(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	p := openDashboard(t, k, 1280, 900)
	const key = `x:<img src=x onerror="window.__pwned=1">`
	const value = `<img src=x onerror="window.__pwned=2"><script>window.__pwned=3</script>`
	p.click("#values")
	p.subscribe("x:*", "")
	p.pin(key)
	p.waitFor(`document.querySelector(".pin")?.dataset.state === "absent"`, "the pin to read its key")

	k.do("SET", key, value)
	p.waitFor(has(row("set", key)), "the hostile key's row")
	p.waitFor(`document.querySelector(".pin .pin-value").textContent === `+strconv.Quote(value), "the hostile value as text")
	if got := eval[string](p, `document.querySelector("#log li.event .key-text").textContent`); got != key {
		t.Fatalf("key shown as %q", got)
	}
	if got := eval[string](p, `document.querySelector(".pin .pin-key").textContent`); got != key {
		t.Fatalf("pinned key shown as %q", got)
	}
	// Values in rows appear once the server sends them (?values=true);
	// wherever they appear they must be text too.
	if n := eval[int](p, `document.querySelectorAll("img, script:not([src])").length`); n != 0 {
		t.Fatalf("%d elements were created from data", n)
	}
	if eval[bool](p, `"__pwned" in window`) {
		t.Fatal("script from a Redis value ran")
	}
}

func TestDashboardShowsServerErrorsNextToFields(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--expose", "user:,order:")
	p := openDashboard(t, k, 1280, 900)
	// The default pattern (*) reaches every key: refused on load.
	p.waitFor(`document.getElementById("pattern-error").textContent.includes("outside the exposed prefixes")`,
		"the refusal of the default pattern")

	p.typeInto("#pattern", "secret:*")
	p.submit("#pattern")
	p.waitFor(`document.getElementById("pattern-error").textContent === 'pattern "secret:*" reaches keys outside the exposed prefixes' &&
		document.getElementById("pattern").getAttribute("aria-invalid") === "true" &&
		document.getElementById("conn").dataset.state === "error"`, "the server's message next to the pattern")

	p.typeInto("#pattern", "user:*")
	p.typeInto("#events", "set,Bad!")
	p.submit("#events")
	p.waitFor(`document.getElementById("events-error").textContent.includes('"Bad!" is not an event name') &&
		document.getElementById("pattern-error").textContent === ""`, "the server's message next to the event names")

	p.pin("secret:token")
	p.waitFor(`document.getElementById("pin-error").textContent.includes("outside the exposed prefixes")`,
		"the refusal of a pin outside the exposed prefixes")

	// A filter the server refuses (or, before filters exist, ignores) is
	// reported next to the filter field, never silently dropped.
	p.typeInto("#events", "")
	p.typeInto("#filter", "value >")
	p.submit("#filter")
	p.waitFor(`document.getElementById("filter-error").textContent !== "" &&
		document.getElementById("events-error").textContent === ""`, "a message next to the filter")
	p.typeInto("#filter", "")

	// The page keeps working once the input is fixed.
	p.subscribe("user:*", "set")
	if eval[string](p, `document.getElementById("events-error").textContent`) != "" {
		t.Fatal("the old error stayed")
	}
	k.do("SET", "user:1", "ada")
	p.waitFor(has(row("set", "user:1")), "rows after fixing the form")
	if n := k.srv.sink.Clients(); n != 1 {
		t.Fatalf("%d streams open, want only the log's", n)
	}
}

// TestDashboardScreenshots writes screenshots/desktop.png, desktop-dark.png
// and phone.png of the dashboard fed by the demo writer; the README
// shows a copy of the desktop one (docs/dashboard.png).
func TestDashboardScreenshots(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	stop := startDemo(k.rc, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	defer stop()
	p := openDashboard(t, k, 1440, 900)
	p.subscribe("*", "")
	p.pin("stats:visits")
	p.pin("sensor:kitchen:temp")
	p.waitFor(count("#log li.event")+" > 40 && "+count("#rate-legend li")+" >= 4 && "+
		count(`.pin[data-state="present"]`)+` === 2 && document.getElementById("rate-chart").dataset.history >= 5`,
		"a busy page with a few seconds of rates")
	eval[bool](p, `(document.activeElement.blur(), true)`)
	p.screenshot("desktop", false)
	p.do(colorScheme("dark"))
	p.waitFor(`matchMedia("(prefers-color-scheme: dark)").matches`, "the dark scheme")
	p.screenshot("desktop-dark", false)

	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	p.waitFor(`window.innerWidth === 390`, "the phone viewport")
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		t.Fatalf("the page is %dpx wide at phone width: it scrolls sideways", w)
	}
	p.screenshot("phone", false)
}
