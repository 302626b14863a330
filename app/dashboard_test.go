package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyflux/keyflux/streams/testkit"
)

// The dashboard, driven in real headless Chromium against a real Keyflux and
// a real redis-server. The page holds one connection: a combined stream with
// the sub "log" (the form's keyspace events) and "pins" (a key watch).

// text is a JavaScript expression: the text of the first match of sel.
func text(sel string) string {
	return fmt.Sprintf(`document.querySelector(%s)?.textContent`, strconv.Quote(sel))
}

// pinSel is the CSS selector of the card of a pinned key.
func pinSel(key string) string {
	return fmt.Sprintf(`.pin[data-key=%s]`, strconv.Quote(key))
}

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
	// Without "Show values" the server sends none and the column is hidden.
	if eval[string](p, `document.getElementById("log-section").dataset.values`) != "off" ||
		eval[string](p, text(row("set", "user:1")+" .v")) != "" {
		t.Fatal("values shown though not asked for")
	}
	p.waitFor(has(`#rate-legend li[data-event="hset"]`), "the rate legend to list hset")
	p.oneConnection()

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

	// Stop ends the log's subscription, and with nothing pinned the connection.
	p.click("#stop")
	p.waitFor(`document.getElementById("conn").dataset.state === "closed" && document.getElementById("conn-text").textContent === "Stopped"`, "the stream stopped")
	testkit.Eventually(t, "no stream client", func() bool { return k.srv.sink.Clients() == 0 })
}

func TestDashboardShowsValues(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--value-max-bytes", "300")
	p := openDashboard(t, k, 1280, 900)
	p.click("#values")
	p.subscribe("v:*", "")
	if eval[string](p, `document.getElementById("log-section").dataset.values`) != "on" {
		t.Fatal("the value column is hidden")
	}
	k.do("SET", "v:str", "hello")
	k.do("HSET", "v:hash", "a", "1", "b", "2")
	k.do("RPUSH", "v:list", "x", "y")
	k.do("ZADD", "v:zset", "1", "ada", "2.5", "grace")
	k.do("XADD", "v:stream", "1-1", "f", "x")
	k.do("SET", "v:big", strings.Repeat("x", 400))
	k.do("SET", "v:bin", "\xff\xfe")
	want := map[string]string{ // row -> the value column
		row("set", "v:str"):     "hello",
		row("hset", "v:hash"):   "a: 1, b: 2",
		row("rpush", "v:list"):  "x, y",
		row("zadd", "v:zset"):   "ada 1, grace 2.5",
		row("xadd", "v:stream"): "1 entry · last 1-1",
		row("set", "v:big"):     "(too large to send: 402 B)",
		row("set", "v:bin"):     "base64://4=",
	}
	for sel, v := range want {
		p.waitFor(text(sel+" .v")+" === "+strconv.Quote(v), "the value "+v+" in "+sel)
	}

	cards := map[string]string{ // pinned key -> its card's value
		"v:zset":   "  1  ada\n2.5  grace",
		"v:stream": "1 entry\nlast 1-1",
		"v:big":    "(too large to send: 402 B)",
		"v:bin":    "base64://4=",
		"v:hash":   "a: 1\nb: 2",
	}
	for key := range cards {
		p.pin(key)
	}
	for key, v := range cards {
		p.waitFor(text(pinSel(key)+" .pin-value")+" === "+strconv.Quote(v), "the card of "+key)
	}
	if got := eval[string](p, text(pinSel("v:zset")+" .type")); got != "zset" {
		t.Fatalf("zset card says type %q", got)
	}
	p.oneConnection()
}

func TestDashboardFilters(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	p := openDashboard(t, k, 1280, 900)
	k.do("SET", "cfg:mode", "one")
	p.pin("cfg:mode")
	p.subscribe("s:*", "")
	k.do("SET", "s:1", "x")
	p.waitFor(has(row("set", "s:1")), "the first row")

	// The server refuses the filter: its own message goes next to the field.
	const bad = `key ==`
	status, body := k.get("/streams/keyspace?" + url.Values{"pattern": {"s:*"}, "filter": {bad}}.Encode())
	if status != 400 {
		t.Fatalf("the server answered %d %v to a broken filter", status, body)
	}
	p.typeInto("#filter", bad)
	p.submit("#filter")
	p.waitFor(text("#filter-error")+" === "+strconv.Quote(body["error"].(string))+` &&
		document.getElementById("filter").getAttribute("aria-invalid") === "true" &&
		document.getElementById("form-error").textContent.includes("keeps watching s:*")`, "the server's message next to the filter")
	// ... and the page keeps working: the applied subscription and the pins go
	// on (the connection that tried the filter reconnects without it,
	// resuming from its last event id).
	p.waitFor(`document.getElementById("conn").dataset.state === "live"`, "live after a refused filter")
	k.do("SET", "s:2", "x")
	k.do("SET", "cfg:mode", "two")
	p.waitFor(has(row("set", "s:2")), "rows after the refused filter")
	p.waitFor(text(pinSel("cfg:mode")+" .pin-value")+` === "two"`, "the pin after the refused filter")

	// A valid filter filters, on the server.
	p.typeInto("#filter", `key != "s:skip"`)
	p.submit("#filter")
	p.waitApplied()
	if eval[string](p, text("#filter-error")) != "" || eval[string](p, text("#form-error")) != "" {
		t.Fatal("the old error stayed")
	}
	k.do("SET", "s:skip", "x")
	k.do("SET", "s:3", "x")
	p.waitFor(has(row("set", "s:3")), "a row the filter keeps")
	if eval[int](p, count(row("set", "s:skip"))) != 0 {
		t.Fatal("the filter let s:skip through")
	}

	// With values, a filter sees JSON values decoded.
	p.click("#values")
	p.typeInto("#filter", `(value?.celsius ?? 0) > 24`)
	p.submit("#filter")
	p.waitApplied()
	k.do("SET", "s:cold", `{"celsius": 20}`)
	k.do("SET", "s:hot", `{"celsius": 30}`)
	p.waitFor(text(row("set", "s:hot")+" .v")+` === '{"celsius": 30}'`, "the hot reading with its value")
	if eval[int](p, count(row("set", "s:cold"))) != 0 {
		t.Fatal("the value filter let the cold reading through")
	}
	p.oneConnection()
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
	pin := `document.querySelector('` + pinSel(key) + `')`
	// Both pins present: the stream that carries them both is live, so the
	// change below arrives as a change, not in a reconnect's snapshot.
	p.waitFor(pin+`?.dataset.state === "present" && `+pin+`.querySelector(".pin-value").textContent === "20.5" && `+
		`document.querySelector('`+pinSel(gone)+`')?.dataset.state === "present"`, "the pinned keys' values")
	if ttl := eval[string](p, pin+`.querySelector(".ttl").textContent`); ttl != "no TTL" {
		t.Fatalf("TTL shown as %q, want no TTL", ttl)
	}
	// The pins ride on the log's connection.
	p.oneConnection()

	// The flash lasts a second: on a loaded machine a poll can miss it, so
	// the page records it when it starts (on any pin node for the key: the
	// cards may be redrawn). The TTL is long enough for a slow poll to see
	// it counting down before the key expires.
	eval[bool](p, `(() => { window.pinFlashed = false;
		new MutationObserver(ms => { for (const m of ms) {
			if (m.target.matches?.('`+pinSel(key)+`') && m.target.classList.contains("flash")) window.pinFlashed = true;
		} }).observe(document.body, {attributes: true, attributeFilter: ["class"], subtree: true}); return true; })()`)
	k.do("SET", key, "21.0", "PX", "6000")
	p.waitFor(pin+`.querySelector(".pin-value").textContent === "21.0" && window.pinFlashed && `+
		pin+`.querySelector(".ttl").textContent.startsWith("TTL ")`, "the updated value, flashing, with a TTL counting down")
	p.waitFor(pin+`.dataset.state === "expired" && `+pin+`.querySelector(".mark").textContent.startsWith("expired at")`,
		"the expired mark")

	other := `document.querySelector('` + pinSel(gone) + `')`
	k.do("DEL", gone)
	p.waitFor(other+`.dataset.state === "deleted" && `+other+`.querySelector(".mark").textContent.startsWith("deleted at")`,
		"the deleted mark")

	k.do("HSET", key, "celsius", "19")
	p.waitFor(pin+`.dataset.state === "present" && `+pin+`.querySelector(".type").textContent === "hash" && `+
		pin+`.querySelector(".pin-value").textContent === "celsius: 19"`, "a recreated key as a hash")

	p.click(pinSel(gone) + " .unpin")
	p.waitFor(count(".pin")+" === 1", "the unpinned card gone")
	k.do("SET", key, "22")
	p.waitFor(pin+`.querySelector(".pin-value").textContent === "22"`, "updates after unpinning another key")
	p.oneConnection()
}

// Pinning a key reopens the one stream with another sub; the log resumes
// from its last id, so no event written meanwhile is lost, and the new pins
// still show their values, also when another client already watches the key
// (its topic then vouches for the id and sends no snapshot).
func TestDashboardPinningLosesNoLogEvents(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	k.do("SET", "cfg:10", "ten")
	k.do("SET", "cfg:30", "thirty")
	other := k.open(combinedPath("pins:keys?key=cfg:30")) // another dashboard
	defer other.Close()
	other.Expect("connected")
	other.Expect("snapshot")
	p := openDashboard(t, k, 1280, 900)
	p.subscribe("job:*", "")
	k.do("SET", "job:0", "x")
	p.waitFor(has(row("set", "job:0")), "the first row")
	const n = 60
	for i := 1; i <= n; i++ {
		if i == 10 || i == 30 {
			p.pin(fmt.Sprint("cfg:", i)) // the card at once, the new stream a moment later
		}
		k.do("SET", fmt.Sprint("job:", i), "x")
	}
	p.waitFor(count(`#log li.event`)+fmt.Sprintf(" >= %d", n+1), "every row")
	for i := 0; i <= n; i++ {
		if c := eval[int](p, count(row("set", fmt.Sprint("job:", i)))); c != 1 {
			t.Fatalf("%d rows for job:%d, want exactly one", c, i)
		}
	}
	p.waitFor(text(pinSel("cfg:10")+" .pin-value")+` === "ten" && `+text(pinSel("cfg:30")+" .pin-value")+` === "thirty"`,
		"the values of the new pins")
	if eval[bool](p, `!document.getElementById("notice").hidden`) {
		t.Fatal("a reset notice after pinning")
	}
	k.do("SET", "cfg:30", "changed")
	p.waitFor(text(pinSel("cfg:30")+" .pin-value")+` === "changed"`, "a change of a pin")
	testkit.Eventually(t, "the page's stream and the other client", func() bool { return k.srv.sink.Clients() == 2 })
	if got := eval[int](p, `window.__es.max`); got > 1 {
		t.Fatalf("the page had %d EventSources open at once, want at most 1", got)
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
	pinned := text(pinSel("cfg:mode") + " .pin-value")
	p.waitFor(pinned+` === "one"`, "the pinned value")
	p.oneConnection()

	if n := k.srv.sink.Drop("test: network blip"); n != 1 {
		t.Fatalf("dropped %d streams, want 1", n)
	}
	p.waitFor(`document.getElementById("conn").dataset.state === "offline" &&
		document.getElementById("conn").dataset.why === "lost" &&
		document.getElementById("conn-text").textContent.startsWith("Reconnecting")`, "reconnecting, saying why")
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
	p.oneConnection()

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
	p.waitFor(`document.querySelector(".pin")?.dataset.state === "absent"`, "the pin's snapshot")

	k.do("SET", key, value)
	p.waitFor(has(row("set", key)), "the hostile key's row")
	p.waitFor(text(".pin .pin-value")+" === "+strconv.Quote(value), "the hostile value as text in the card")
	p.waitFor(text(`#log li.event .v`)+" === "+strconv.Quote(value), "the hostile value as text in the log")
	if got := eval[string](p, text("#log li.event .key-text")); got != key {
		t.Fatalf("key shown as %q", got)
	}
	if got := eval[string](p, text(".pin .pin-key")); got != key {
		t.Fatalf("pinned key shown as %q", got)
	}
	k.do("HSET", "x:h", value, value)
	p.waitFor(text(row("hset", "x:h")+" .v")+" === "+strconv.Quote(value+": "+value), "a hostile hash as text")
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
	// The default pattern (*) reaches every key: refused on load, and with
	// nothing else to carry there is no connection.
	p.waitFor(`document.getElementById("pattern-error").textContent.includes("outside the exposed prefixes") &&
		document.getElementById("conn").dataset.state === "error"`, "the refusal of the default pattern")

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

	// The page keeps working once the input is fixed.
	p.subscribe("user:*", "set")
	if eval[string](p, text("#events-error")) != "" {
		t.Fatal("the old error stayed")
	}
	k.do("SET", "user:1", "ada")
	p.waitFor(has(row("set", "user:1")), "rows after fixing the form")

	// A pin the server refuses goes away with the message next to the pin
	// field; the log and the other pins carry on.
	p.pin("user:1")
	p.waitFor(text(pinSel("user:1")+" .pin-value")+` === "ada"`, "an allowed pin")
	p.typeInto("#pin-key", "secret:token")
	p.submit("#pin-key")
	p.waitFor(text("#pin-error")+` === 'key "secret:token" is outside the exposed prefixes' && `+
		count(".pin")+" === 1", "the refusal of a pin outside the exposed prefixes")
	k.do("SET", "user:1", "grace")
	p.waitFor(text(pinSel("user:1")+" .pin-value")+` === "grace"`, "the allowed pin after the refusal")
	k.do("SET", "user:2", "x")
	p.waitFor(has(row("set", "user:2")), "rows after the refused pin")
	if eval[string](p, `localStorage.getItem("keyflux.pins")`) != `["user:1"]` {
		t.Fatal("the refused pin was kept")
	}
	p.oneConnection()
}

// TestDashboardScreenshots writes screenshots/desktop.png, desktop-dark.png
// and phone.png (the whole page) of the dashboard fed by the demo writer.
// With KEYFLUX_UPDATE_DOCS=1 it also copies the dark desktop one to
// docs/dashboard.png, which the README shows; otherwise a test run leaves
// the tracked tree as it was.
func TestDashboardScreenshots(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	stop := k.srv.redis.StartDemo(20*time.Millisecond, slog.New(slog.DiscardHandler))
	defer stop()
	k.do("ZADD", "leaderboard", "4210", "ada", "3890", "grace", "3120", "linus", "2875", "ken")
	p := openDashboard(t, k, 1440, 1040)
	p.click("#values")
	p.subscribe("*", "")
	p.pin("stats:visits")
	p.pin("leaderboard")
	p.pin("sensor:kitchen:temp")
	p.waitFor(count("#log li.event")+" > 40 && "+count("#rate-legend li")+" >= 4 && "+
		count(`.pin[data-state="present"]`)+` === 3 && document.getElementById("rate-chart").dataset.history >= 5`,
		"a busy page with a few seconds of rates")
	p.oneConnection()
	eval[bool](p, `(document.activeElement.blur(), true)`)
	p.screenshot("desktop", false)
	p.do(colorScheme("dark"))
	p.waitFor(`matchMedia("(prefers-color-scheme: dark)").matches`, "the dark scheme")
	p.screenshot("desktop-dark", false)
	if os.Getenv("KEYFLUX_UPDATE_DOCS") == "1" {
		shot, err := os.ReadFile(filepath.Join("..", "screenshots", "desktop-dark.png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	p.waitFor(`window.innerWidth === 390`, "the phone viewport")
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		t.Fatalf("the page is %dpx wide at phone width: it scrolls sideways", w)
	}
	p.screenshot("phone", true)
}
