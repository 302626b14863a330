package main

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// TestBrowserSpringSessionExpiry: a real Chromium holding the SESSION
// cookie of a session written in Spring Session's exact format watches its
// own expires key: it gets connected, then the keyspace "expired" of that
// key (Redis expiring it), then auth-expired when Spring's rule ends the
// session (its hash still there, as the indexed repository keeps it five
// minutes longer). Another session's expires key is refused with 403.
func TestBrowserSpringSessionExpiry(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--auth", "spring-session")
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(k.logs.String())
		}
	})
	const mine, other = "5c2d7e1f-3a4b-4c6d-8e9f-0a1b2c3d4e5f", "9e8d7c6b-5a49-4837-a625-140f2e3d4c5b"
	expiresKey := "spring:session:sessions:expires:" + mine
	own := "/streams/keyspace?pattern=" + expiresKey
	foreign := "/streams/keyspace?pattern=spring:session:sessions:expires:" + other

	// A page of Keyflux's own origin (the identity answer, 401 without a
	// cookie), so the script's requests are same-origin as the dashboard's.
	p := openPage(t, k.base+"/api/identity")
	testkit.WriteSpringSession(t, k.rc, "spring:session", other, "bob", time.Hour)
	testkit.WriteSpringSession(t, k.rc, "spring:session", mine, "alice", 2*time.Second)
	// Spring's DefaultCookieSerializer writes the id base64-encoded.
	p.setCookie(k, "SESSION", base64.StdEncoding.EncodeToString([]byte(mine)))

	// The page records every event by name, in order, and closes on
	// auth-expired as a page should (the session will not come back).
	eval[bool](p.page, `(() => {
		const r = window.__spring = { events: [], errors: 0, state: -1 };
		const es = new EventSource(`+strconv.Quote(own)+`);
		window.__own = es;
		for (const name of ["connected", "expire", "expired", "del", "auth-expired", "message"]) {
			es.addEventListener(name, e => {
				r.events.push({ name, data: e.data });
				if (name === "auth-expired") es.close();
			});
		}
		es.onerror = () => { r.errors++; r.state = es.readyState; };
		return true;
	})()`)
	p.waitFor(`window.__spring.events.some(e => e.name === "auth-expired")`, "auth-expired when the session ends")

	type event struct{ Name, Data string }
	got := eval[[]event](p.page, `window.__spring.events`)
	names := make([]string, len(got))
	for i, e := range got {
		names[i] = e.Name
	}
	want := []string{"connected", "expired", "auth-expired"}
	if len(got) != len(want) {
		t.Fatalf("the page got events %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("the page got events %v, want %v", names, want)
		}
	}
	if d := eval[string](p.page, `JSON.parse(window.__spring.events[1].data).key`); d != expiresKey {
		t.Errorf("the expired event is of key %q, want %q (data %s)", d, expiresKey, got[1].Data)
	}
	if d := eval[string](p.page, `JSON.parse(window.__spring.events[2].data).reason`); d != "session-expired" {
		t.Errorf("auth-expired data %s, want reason session-expired", got[2].Data)
	}
	if n := eval[int](p.page, `window.__spring.errors`); n != 0 {
		t.Errorf("the page's own stream had %d errors before auth-expired", n)
	}
	// Spring's rule ended it, not the hash's TTL: the hash is still there.
	if n, _ := k.do("EXISTS", "spring:session:sessions:"+mine).AsInt64(); n != 1 {
		t.Error("the session hash is gone: the test did not show Spring's rule")
	}
	if a := p.fetchJSON("/api/identity"); a.Status != 401 {
		t.Errorf("/api/identity from the page after the session ended: %d %q, want 401", a.Status, a.Error)
	}

	// Now a live session of its own, reaching for another session's
	// expires key: the EventSource fails for good, and the same URL
	// fetched answers 403 with a JSON error.
	const again = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"
	testkit.WriteSpringSession(t, k.rc, "spring:session", again, "alice", time.Hour)
	p.setCookie(k, "SESSION", base64.StdEncoding.EncodeToString([]byte(again)))
	if a := p.fetchJSON("/api/identity"); a.Status != 200 {
		t.Fatalf("/api/identity with the new session: %d %q, want 200", a.Status, a.Error)
	}
	eval[bool](p.page, `(() => {
		const r = window.__foreign = { events: 0, errors: 0 };
		const es = new EventSource(`+strconv.Quote(foreign)+`);
		window.__foreignES = es;
		es.addEventListener("connected", () => r.events++);
		es.onmessage = () => r.events++;
		es.onerror = () => r.errors++;
		return true;
	})()`)
	p.waitFor(`window.__foreign.errors > 0 && window.__foreignES.readyState === EventSource.CLOSED`,
		"the stream of another session's expires key to be refused")
	if n := eval[int](p.page, `window.__foreign.events`); n != 0 {
		t.Errorf("another session's stream delivered %d events", n)
	}
	a := p.fetchJSON(foreign)
	if a.Status != 403 || a.Error == "" {
		t.Errorf("fetch of another session's expires key: %d %q, want 403 with a JSON error", a.Status, a.Error)
	}
	if got := p.status(k.base + foreign); len(got) == 0 || got[0] != 403 {
		t.Errorf("the EventSource of another session's expires key got statuses %v, want 403", got)
	}
}

// fetched is the status and JSON "error" of a response the page fetched.
type fetched struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// fetchJSON fetches path from the page (its cookies go along) and awaits
// the answer: the evaluation does not await promises, the page records it.
func (p *corsPage) fetchJSON(path string) fetched {
	p.t.Helper()
	eval[bool](p.page, `(window.__fetched = null, fetch(`+strconv.Quote(path)+`).then(
		async r => { const b = await r.json().catch(() => ({})); window.__fetched = { status: r.status, error: String(b.error ?? "") }; },
		e => { window.__fetched = { status: 0, error: "failed: " + e.name }; }), true)`)
	p.waitFor(`window.__fetched !== null`, "the fetch of "+path+" to settle")
	return eval[fetched](p.page, `window.__fetched`)
}
