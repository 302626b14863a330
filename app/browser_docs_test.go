package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// docs/browser.md is the API reference of public/keyflux.js: it must mention
// every name keyflux.d.ts exports, every method and property of its classes
// and interfaces, so that a change to the types that the page does not
// follow fails here.

var (
	// export [declare] class|interface|type|function|const|enum Name
	dtsExport = regexp.MustCompile(`(?m)^export\s+(?:declare\s+)?(?:abstract\s+)?(class|interface|type|function|const|let|enum)\s+([A-Za-z_$][\w$]*)`)
	// a member of a class or interface body: name(, name<T>(, [Symbol.x](,
	// or a property name?: / readonly name:
	dtsMethod   = regexp.MustCompile(`^\s+(?:readonly\s+|static\s+)*([A-Za-z_$][\w$]*|\[Symbol\.\w+\])\s*(?:<[^>]*>)?\s*\(`)
	dtsProperty = regexp.MustCompile(`^\s+(?:readonly\s+|static\s+)*([A-Za-z_$][\w$]*)\??\s*:`)
)

// dtsMember is one member of an exported class or interface.
type dtsMember struct {
	owner, name string
	method      bool
}

// parseDTS returns the exported names of a .d.ts and the members of its
// exported classes and interfaces (constructors and index signatures left
// out; an overloaded method once).
func parseDTS(src string) (exports []string, members []dtsMember) {
	seen := map[string]bool{}
	owner := ""
	depth := 0
	for line := range strings.SplitSeq(src, "\n") {
		code := line
		if i := strings.Index(code, "//"); i >= 0 {
			code = code[:i]
		}
		trimmed := strings.TrimSpace(code)
		if strings.HasPrefix(trimmed, "*") || strings.HasPrefix(trimmed, "/*") {
			continue // a doc comment's line
		}
		if depth == 0 {
			if m := dtsExport.FindStringSubmatch(code); m != nil {
				exports = append(exports, m[2])
				owner = ""
				if m[1] == "class" || m[1] == "interface" {
					owner = m[2]
				}
			}
		} else if depth == 1 && owner != "" {
			var name string
			method := false
			if m := dtsMethod.FindStringSubmatch(code); m != nil {
				name, method = m[1], true
			} else if m := dtsProperty.FindStringSubmatch(code); m != nil {
				name = m[1]
			}
			if name != "" && name != "constructor" && !seen[owner+"."+name] {
				seen[owner+"."+name] = true
				members = append(members, dtsMember{owner, name, method})
			}
		}
		depth += strings.Count(code, "{") - strings.Count(code, "}")
		if depth == 0 {
			owner = ""
		}
	}
	return exports, members
}

func TestBrowserDocsCoverTheTypes(t *testing.T) {
	dts, err := os.ReadFile(filepath.Join("..", "public", "keyflux.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "browser.md"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(doc)
	exports, members := parseDTS(string(dts))
	// The parser itself: the API the issue fixed must be found.
	for _, want := range []string{"Keyflux", "Subscription", "Watch", "KeyfluxError", "KeyState", "Status", "StatusDetail"} {
		if !slices.Contains(exports, want) {
			t.Fatalf("parsing keyflux.d.ts found exports %v, not %s", exports, want)
		}
	}
	methods := map[string]bool{}
	for _, m := range members {
		if m.method {
			methods[m.owner+"."+m.name] = true
		}
	}
	for _, want := range []string{"Keyflux.until", "Keyflux.watch", "Keyflux.keyspace", "Subscription.close", "Watch.get", "Subscription.[Symbol.asyncIterator]"} {
		if !methods[want] {
			t.Fatalf("parsing keyflux.d.ts found methods %v, not %s", methods, want)
		}
	}

	for _, name := range exports {
		// As code: `Name`, or the start of a code span (`Name<...>`, `new Name(`).
		if !regexp.MustCompile("`(?:new )?" + regexp.QuoteMeta(name) + "\\b").MatchString(page) {
			t.Errorf("docs/browser.md does not mention %s (exported by keyflux.d.ts) as code", name)
		}
	}
	for _, m := range members {
		var re *regexp.Regexp
		switch {
		case strings.HasPrefix(m.name, "["):
			re = regexp.MustCompile(regexp.QuoteMeta(strings.Trim(m.name, "[]")))
		case m.method:
			// a call: kf.until(, sub.on(, w.get(
			re = regexp.MustCompile(`\.` + regexp.QuoteMeta(m.name) + `\(`)
		default:
			// a property: `name`, .name or name: in code
			re = regexp.MustCompile("(?:`" + regexp.QuoteMeta(m.name) + "`|\\." + regexp.QuoteMeta(m.name) + "\\b|\\b" + regexp.QuoteMeta(m.name) + ":)")
		}
		if !re.MatchString(page) {
			kind := "property"
			if m.method {
				kind = "method"
			}
			t.Errorf("docs/browser.md does not mention the %s %s of %s (keyflux.d.ts)", kind, m.name, m.owner)
		}
	}
}

func TestBrowserDocsParseDTS(t *testing.T) {
	exports, members := parseDTS(`// a comment: export class Nope {}
/** Docs. */
export interface A {
  /** a field */
  x: number;
  y?: { nested(): void; z: string };
}
export type B = "a" | "b";
export declare class C<E> implements AsyncIterable<E> {
  constructor(o?: A);
  readonly status: B;
  on<K extends keyof A>(name: K, fn: (ev: A[K]) => void): this;
  on(name: string, fn: () => void): this;
  [Symbol.asyncIterator](): AsyncIterator<E>;
}
`)
	if strings.Join(exports, ",") != "A,B,C" {
		t.Fatalf("exports %v", exports)
	}
	var got []string
	for _, m := range members {
		s := m.owner + "." + m.name
		if m.method {
			s += "()"
		}
		got = append(got, s)
	}
	if want := "A.x,A.y,C.status,C.on(),C.[Symbol.asyncIterator]()"; strings.Join(got, ",") != want {
		t.Fatalf("members %v, want %s", got, want)
	}
}

// docPage returns the n-th (from 0) ```html block of docs/browser.md.
func docPage(t *testing.T, n int) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "browser.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```html\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	var pages []string
	for _, b := range blocks {
		if strings.HasPrefix(b[1], "<!doctype html>") {
			pages = append(pages, b[1])
		}
	}
	if n >= len(pages) {
		t.Fatalf("docs/browser.md has %d complete pages, want at least %d", len(pages), n+1)
	}
	return pages[n]
}

// showDocPage replaces the document of p (a page of Keyflux's origin) with
// html, whose module scripts then run as the page's own.
func showDocPage(p *page, html string) {
	p.t.Helper()
	eval[bool](p, `(document.open(), document.write(`+strconv.Quote(html)+`), document.close(), true)`)
}

// The "is my job done?" page of docs/browser.md, as written there, in real
// Chromium against a real Keyflux: it waits while the job runs, says done
// on the SET that finishes it, and leaves no stream behind.
func TestBrowserDocsJobPage(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "50ms")
	k.do("SET", "job:42", "running")
	p := openPage(t, k.base+"/healthz")
	showDocPage(p.page, docPage(t, 0))
	p.waitFor(`document.getElementById("state")?.textContent === "Waiting for job 42…"`, "the waiting page")
	testkit.Eventually(t, "the page's key watch", func() bool { return metric(t, k, "keyflux_clients_connected") == 1 })
	k.do("SET", "job:42", "still running")
	k.do("SET", "job:42", "done")
	p.waitFor(`document.getElementById("state").textContent === 'Job 42 is done (string "done").' &&
		document.getElementById("stop").hidden`, "the page to say the job is done")
	testkit.Eventually(t, "no stream left", func() bool { return metric(t, k, "keyflux_clients_connected") == 0 })

	// Done before the page opened: at once. Stopped by the user: says so.
	q := openPage(t, k.base+"/healthz")
	showDocPage(q.page, docPage(t, 0))
	q.waitFor(`document.getElementById("state")?.textContent.startsWith("Job 42 is done")`, "done at once")
	testkit.Eventually(t, "no stream left", func() bool { return metric(t, k, "keyflux_clients_connected") == 0 })
	k.do("SET", "job:42", "running")
	r := openPage(t, k.base+"/healthz")
	showDocPage(r.page, docPage(t, 0))
	r.waitFor(`document.getElementById("state")?.textContent === "Waiting for job 42…"`, "the waiting page")
	// (The page's text is there before its module runs: wait for its watch.)
	testkit.Eventually(t, "the third page's key watch", func() bool { return metric(t, k, "keyflux_clients_connected") == 1 })
	eval[bool](r.page, `(document.getElementById("stop").click(), true)`)
	r.waitFor(`document.getElementById("state").textContent === "Stopped waiting for job 42."`, "stopped waiting")
}

// The session-expiry page of docs/browser.md, under --auth spring-session:
// it shows whose session it is and the time left, and goes to the login
// page when the session is deleted (a logout).
func TestBrowserDocsSessionExpiryPage(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--auth", "spring-session")
	const id = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
	testkit.WriteSpringSession(t, k.rc, "spring:session", id, "alice", time.Hour)
	p := openPage(t, k.base+"/healthz")
	p.setCookie(k, "SESSION", base64.StdEncoding.EncodeToString([]byte(id)))
	showDocPage(p.page, docPage(t, 1))
	p.waitFor(`/^alice: (59|60) min left$/.test(document.getElementById("left")?.textContent)`, "the time left")
	testkit.Eventually(t, "the page's key watch", func() bool { return metric(t, k, "keyflux_clients_connected") == 1 })

	k.do("DEL", "spring:session:sessions:"+id)
	login := func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, u := range p.urls {
			if strings.HasPrefix(u, k.base+"/login?reason=") {
				return u
			}
		}
		return ""
	}
	testkit.Eventually(t, "the page to go to the login page", func() bool { return login() != "" })
	if u := login(); !strings.HasSuffix(u, "=del") && !strings.HasSuffix(u, "=session-ended") && !strings.HasSuffix(u, "=signed-out") {
		t.Fatalf("the page went to %s, want a reason of the logout", u)
	}
}
