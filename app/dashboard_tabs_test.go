package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/keyflux/keyflux/streams/testkit"
)

// Eight dashboard tabs of one browser: keyflux.js gives them one server
// connection (a SharedWorker holds it), so none sits at "Connecting…"
// behind the browser's six connections per site; every tab gets every
// event, and closing tabs disturbs none of the others.
func TestDashboardTabsShareOneConnection(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m")
	first := openDashboard(t, k, 1280, 900)
	first.subscribe("tab:*", "") // saved: the other tabs start with it
	tabs := []*page{first}
	for range 7 {
		q := first.dashboardTab()
		q.waitApplied()
		tabs = append(tabs, q)
	}
	for i, q := range tabs {
		if got := eval[string](q, text("#conn-text")); got != "Live" {
			t.Fatalf("tab %d says %q, want Live\n%s", i, got, q.debug())
		}
	}
	testkit.Eventually(t, "one stream client for eight tabs", func() bool {
		return k.srv.sink.Clients() == 1 && metric(t, k, "keyflux_clients_connected") == 1
	})
	for i, q := range tabs {
		if n := eval[int](q, `window.__es.made`); n > 1 {
			t.Fatalf("tab %d made %d EventSources of its own", i, n)
		}
	}

	k.do("SET", "tab:1", "x")
	for i, q := range tabs {
		q.waitFor(has(row("set", "tab:1")), fmt.Sprintf("the row of tab:1 in tab %d", i))
	}
	// A tab joining the connection costs the others nothing, no reset: its
	// subscription joins fresh.
	for i, q := range tabs {
		if eval[bool](q, `!document.getElementById("notice").hidden`) {
			t.Errorf("tab %d shows a reset: %s", i, eval[string](q, text("#notice-text")))
		}
	}

	// Close two tabs (the first holds the browser itself); the others go
	// on, and see every event exactly once.
	tabs[1].closeTab()
	tabs[4].closeTab()
	rest := append(append([]*page{tabs[0]}, tabs[2:4]...), tabs[5:]...)
	for n := 2; n <= 5; n++ {
		k.do("SET", fmt.Sprint("tab:", n), "x")
	}
	for i, q := range rest {
		q.waitFor(has(row("set", "tab:5")), fmt.Sprintf("the row of tab:5 in tab %d", i))
		for n := 1; n <= 5; n++ {
			if c := eval[int](q, count(row("set", fmt.Sprint("tab:", n)))); c != 1 {
				t.Fatalf("tab %d shows %d rows of tab:%d, want 1\n%s", i, c, n, q.debug())
			}
		}
		if !strings.HasPrefix(eval[string](q, text("#conn-text")), "Live") {
			t.Fatalf("tab %d is not live after others closed\n%s", i, q.debug())
		}
	}
	testkit.Eventually(t, "still one stream client", func() bool {
		return metric(t, k, "keyflux_clients_connected") == 1
	})
}

// The header says why the page is not live, in the server's words: the
// limit of streams per address (429, and when it retries), then Keyflux
// gone (server down), and it comes back live by itself each time.
func TestDashboardSaysWhyItIsNotLive(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--max-clients-per-ip", "1")
	held := k.open("/streams/keyspace?pattern=held:*") // the address's one stream
	held.Expect("connected")
	status, body := k.get("/streams/keyspace?pattern=other:*")
	reason, _ := body["error"].(string)
	if status != 429 || reason == "" {
		t.Fatalf("a second stream got %d %v, want 429 with a reason", status, body)
	}

	p := openDashboard(t, k, 1280, 900)
	p.waitFor(`document.getElementById("conn").dataset.state === "limited" &&
		document.getElementById("conn").dataset.why === "limit" &&
		/^Limit reached · retrying (in \d+s|now)$/.test(document.getElementById("conn-text").textContent) &&
		!document.getElementById("conn-why").hidden &&
		document.getElementById("conn-why").textContent.includes(`+strconv.Quote(reason)+`) &&
		document.getElementById("conn-why").textContent.includes("(HTTP 429)")`, "the limit, in the server's words")

	held.Close()
	p.waitApplied()
	if !eval[bool](p, `document.getElementById("conn-why").hidden`) {
		t.Fatal("the reason stayed once live")
	}
	k.do("SET", "user:1", "x")
	p.waitFor(has(row("set", "user:1")), "a row once live")

	// Keyflux goes away: the browser reconnects in vain, and the page
	// says the server is down.
	addr := k.srv.addr()
	k.shutdown()
	p.waitFor(`document.getElementById("conn").dataset.state === "offline" &&
		document.getElementById("conn").dataset.why === "down" &&
		document.getElementById("conn-text").textContent.startsWith("Server down") &&
		document.getElementById("conn-why").textContent.startsWith("Keyflux cannot be reached")`, "server down")

	// Back on the same address: live again, by itself.
	k2 := startKeyfluxOn(t, k.redis, "--listen", addr, "--max-clients-per-ip", "1")
	p.waitFor(`document.getElementById("conn").dataset.state === "live"`, "live after the restart")
	// Live is the response head; the new process's Redis subscription may
	// come a moment later, and a write before it is not the stream's.
	testkit.Eventually(t, "the new process's keyspace subscription", func() bool {
		n, _ := k2.do("PUBSUB", "NUMPAT").AsInt64()
		return n > 0
	})
	k2.do("SET", "user:2", "x")
	p.waitFor(has(row("set", "user:2")), "a row after the restart")
}

// Fifty pinned keys (the most the panel takes) and the log: 51
// subscriptions whose combined-stream URL passes 4,000 bytes, so
// keyflux.js names them as a set (POST /api/sets) and still holds one
// connection; every card shows its value and follows its changes.
func TestDashboardFiftyPins(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("pinned:%02d:%s", i, strings.Repeat("k", 60))
		k.do("SET", keys[i], fmt.Sprint("v", i))
	}
	p := openDashboard(t, k, 1280, 900)
	list, _ := json.Marshal(keys)
	eval[bool](p, `(localStorage.setItem("keyflux.pins", `+strconv.Quote(string(list))+`), true)`)
	p.do(chromedp.Reload())
	p.waitFor(`document.body.dataset.app === "ready" && `+count(`.pin[data-state="present"]`)+` === 50`, "fifty cards with values")
	for _, i := range []int{0, 17, 49} {
		if got := eval[string](p, text(pinSel(keys[i])+" .pin-value")); got != fmt.Sprint("v", i) {
			t.Fatalf("the card of %s shows %q", keys[i], got)
		}
	}
	p.oneConnection()
	if sets, _ := k.do("KEYS", "keyflux:set:*").AsStrSlice(); len(sets) == 0 {
		t.Fatal("no named set in Redis: the page did not POST /api/sets")
	}
	k.do("SET", keys[33], "changed")
	p.waitFor(text(pinSel(keys[33])+" .pin-value")+` === "changed"`, "a change of the 34th pin")
	p.subscribe("pinned:*", "")
	k.do("DEL", keys[0])
	p.waitFor(has(row("del", keys[0]))+" && "+`document.querySelector('`+pinSel(keys[0])+`').dataset.state === "deleted"`,
		"the log row and the card of a deleted key")
	p.oneConnection()
}
