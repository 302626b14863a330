package handlers

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/handlers/sse"
	"github.com/keyflux/keyflux/streams"
)

// modeOnly is an Authenticator that knows its mode and finds no identity
// in any request: enough for the origin check, which runs before it.
type modeOnly string

func (m modeOnly) Mode() string { return string(m) }
func (m modeOnly) Authenticate(context.Context, auth.Request) (*auth.Identity, error) {
	return nil, auth.ErrNoCredentials
}

// corsApp is the routes of Register behind Guard, as the server mounts
// them, with a hub and a sink that nothing here should ever reach.
type corsApp struct {
	*fiber.App
	t    *testing.T
	hub  *streams.Hub
	sink *sse.Sink
	once sync.Once
}

func newCORSApp(t *testing.T, authn auth.Authenticator, origins ...string) *corsApp {
	t.Helper()
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler, DisableStartupMessage: true})
	Guard(app)
	a := &corsApp{App: app, t: t, hub: streams.NewHub(streams.HubOptions{}), sink: sse.NewSink(sse.SinkOptions{})}
	t.Cleanup(a.hub.Close)
	t.Cleanup(a.sink.Close)
	list, err := ParseOrigins(origins)
	if err != nil {
		t.Fatal(err)
	}
	Register(app, Config{
		Hub: a.hub, Sink: a.sink, AllowOrigins: list, Auth: authn, AuthCookie: "keyflux_token",
		Ready: func(context.Context) error { return nil },
	})
	return a
}

// do sends a request with headers (name, value pairs) to the server's
// handler, Guard included, as a connection would; the request's Host is
// example.com. (Straight to the handler: a served connection would start
// fasthttp's date updater, a goroutine that never ends.)
func (a *corsApp) do(method, target string, headers ...string) (*http.Response, map[string]any) {
	a.t.Helper()
	a.once.Do(func() { a.Handler() }) // builds the routes
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(target)
	req.Header.SetHost("example.com")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	a.Server().Handler(&ctx)
	resp := &http.Response{StatusCode: ctx.Response.StatusCode(), Header: http.Header{}}
	ctx.Response.Header.VisitAll(func(k, v []byte) { resp.Header.Add(string(k), string(v)) })
	var body map[string]any
	// fasthttp writes no body with a 204 (Fiber leaves "No Content" in it).
	if b := ctx.Response.Body(); len(b) > 0 && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, &body); err != nil {
			a.t.Fatalf("%s %s: %d, body %q is not JSON", method, target, resp.StatusCode, b)
		}
	}
	return resp, body
}

// corsOf is every Access-Control-* header of resp.
func corsOf(resp *http.Response) map[string]string {
	out := map[string]string{}
	for name, v := range resp.Header {
		if strings.HasPrefix(name, "Access-Control-") {
			out[name] = strings.Join(v, ", ")
		}
	}
	return out
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins([]string{"https://App.Example", "http://127.0.0.1:8080/", "http://[::1]:3000"})
	want := []string{"https://app.example", "http://127.0.0.1:8080", "http://[::1]:3000"}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ParseOrigins = %q, %v; want %q", got, err, want)
	}
	if got, err := ParseOrigins([]string{"*"}); err != nil || len(got) != 1 || got[0] != "*" {
		t.Fatalf(`ParseOrigins("*") = %q, %v`, got, err)
	}
	if got, err := ParseOrigins(nil); err != nil || len(got) != 0 {
		t.Fatalf("ParseOrigins(nil) = %q, %v", got, err)
	}
	for _, bad := range []string{
		"*,https://a.example", "https://*.example.com", "app.example", "ftp://a.example", "null",
		"https://a.example/path", "https://a.example?x=1", "https://a.example#f", "https://u:p@a.example",
		"https://a.example:99999", "https://a.example:x", "https://a example", "https://a\r\nX: y",
		"https://a.example,evil", "https://", "javascript:alert(1)",
	} {
		if got, err := ParseOrigins([]string{bad}); err == nil {
			t.Errorf("ParseOrigins(%q) = %q, want an error", bad, got)
		}
	}
}

// A listed origin gets itself back with credentials and Vary; an unlisted
// one no CORS header at all; the answers of errors carry them too.
func TestCORSListedAndUnlisted(t *testing.T) {
	a := newCORSApp(t, nil, "https://app.example", "http://127.0.0.1:5173")
	for _, origin := range []string{"https://app.example", "http://127.0.0.1:5173"} {
		resp, _ := a.do("GET", "/api/identity", "Origin", origin)
		h := corsOf(resp)
		if resp.StatusCode != 200 || h["Access-Control-Allow-Origin"] != origin ||
			h["Access-Control-Allow-Credentials"] != "true" || resp.Header.Get("Vary") != "Origin" ||
			!strings.Contains(h["Access-Control-Expose-Headers"], "WWW-Authenticate") {
			t.Errorf("GET from %s: %d, CORS %v, Vary %q", origin, resp.StatusCode, h, resp.Header.Values("Vary"))
		}
	}
	// An error response (no such route) is readable by the listed page too.
	resp, body := a.do("GET", "/api/nosuch", "Origin", "https://app.example")
	if resp.StatusCode != 404 || body["error"] == nil || corsOf(resp)["Access-Control-Allow-Origin"] != "https://app.example" {
		t.Errorf("404 from a listed origin: %d %v, CORS %v", resp.StatusCode, body, corsOf(resp))
	}
	for _, origin := range []string{"https://evil.example", "https://app.example.evil", "http://app.example", "null"} {
		resp, _ := a.do("GET", "/api/identity", "Origin", origin)
		if h := corsOf(resp); resp.StatusCode != 200 || len(h) != 0 || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("GET from unlisted %s: %d, CORS %v, Vary %q", origin, resp.StatusCode, h, resp.Header.Values("Vary"))
		}
	}
	// Same-origin and non-browser requests carry no Origin: no CORS either,
	// but the answer still varies by it for caches.
	resp, _ = a.do("GET", "/api/identity")
	if h := corsOf(resp); resp.StatusCode != 200 || len(h) != 0 || resp.Header.Get("Vary") != "Origin" {
		t.Errorf("GET without Origin: %d, CORS %v, Vary %q", resp.StatusCode, h, resp.Header.Values("Vary"))
	}
	// Health is outside CORS.
	if resp, _ := a.do("GET", "/healthz", "Origin", "https://app.example"); len(corsOf(resp)) != 0 {
		t.Errorf("/healthz sent CORS headers %v", corsOf(resp))
	}
}

func TestCORSAnyOriginNeverWithCredentials(t *testing.T) {
	a := newCORSApp(t, nil, "*")
	resp, _ := a.do("GET", "/api/identity", "Origin", "https://whoever.example")
	h := corsOf(resp)
	if resp.StatusCode != 200 || h["Access-Control-Allow-Origin"] != "*" || h["Access-Control-Allow-Credentials"] != "" {
		t.Fatalf("GET with *: %d, CORS %v", resp.StatusCode, h)
	}
	resp, _ = a.do("OPTIONS", "/api/channels/x", "Origin", "https://whoever.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if h := corsOf(resp); resp.StatusCode != 204 || h["Access-Control-Allow-Origin"] != "*" || h["Access-Control-Allow-Credentials"] != "" {
		t.Fatalf("preflight with *: %d, CORS %v", resp.StatusCode, h)
	}
}

// Preflights are answered for every API route, before authentication (a
// preflight carries no credentials), and for stream routes without
// subscribing anything; Guard lets OPTIONS through.
func TestCORSPreflight(t *testing.T) {
	a := newCORSApp(t, modeOnly(auth.ModeJWT), "https://app.example")
	for _, target := range []string{"/api/channels/x", "/api/log/audit", "/api/keys/user:1", "/api/identity"} {
		resp, body := a.do("OPTIONS", target, "Origin", "https://app.example",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
		h := corsOf(resp)
		if resp.StatusCode != 204 || body != nil ||
			h["Access-Control-Allow-Origin"] != "https://app.example" || h["Access-Control-Allow-Credentials"] != "true" ||
			h["Access-Control-Allow-Methods"] != corsMethods || h["Access-Control-Allow-Headers"] != corsHeaders ||
			h["Access-Control-Max-Age"] != "600" {
			t.Errorf("preflight of %s: %d %v, CORS %v", target, resp.StatusCode, body, h)
		}
	}
	// A stream route: EventSource's reconnect sends Last-Event-ID.
	for _, target := range []string{"/streams/keyspace?pattern=user:*", "/streams?sub=channels/news", "/streams/log/audit"} {
		resp, _ := a.do("OPTIONS", target, "Origin", "https://app.example",
			"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "last-event-id")
		if h := corsOf(resp); resp.StatusCode != 204 || h["Access-Control-Allow-Origin"] != "https://app.example" {
			t.Errorf("preflight of %s: %d, CORS %v", target, resp.StatusCode, h)
		}
		// Not a preflight: no route answers OPTIONS on a stream.
		if resp, _ := a.do("OPTIONS", target, "Origin", "https://app.example"); resp.StatusCode == 200 || resp.StatusCode == 204 {
			t.Errorf("plain OPTIONS of %s: %d", target, resp.StatusCode)
		}
	}
	if a.hub.Topics() != 0 || a.sink.Clients() != 0 {
		t.Fatalf("preflights subscribed: %d topics, %d clients", a.hub.Topics(), a.sink.Clients())
	}
	// An unlisted origin's preflight is refused, with no CORS header.
	resp, body := a.do("OPTIONS", "/api/channels/x", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != 403 || len(corsOf(resp)) != 0 || !strings.Contains(body["error"].(string), "not allowed (--allow-origin)") {
		t.Fatalf("unlisted preflight: %d %v, CORS %v", resp.StatusCode, body, corsOf(resp))
	}
}

// Without auth, an unlisted preflight is refused all the same (it could not
// be used anyway), and no --allow-origin means no CORS at all.
func TestCORSWithoutOrigins(t *testing.T) {
	a := newCORSApp(t, nil)
	resp, _ := a.do("GET", "/api/identity", "Origin", "https://app.example")
	if resp.StatusCode != 200 || len(corsOf(resp)) != 0 {
		t.Fatalf("GET: %d, CORS %v", resp.StatusCode, corsOf(resp))
	}
	resp, body := a.do("OPTIONS", "/api/channels/x", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != 403 || len(corsOf(resp)) != 0 || body["error"] == nil {
		t.Fatalf("preflight: %d %v, CORS %v", resp.StatusCode, body, corsOf(resp))
	}
}

// With auth on, a foreign page's request is refused before its
// credentials are read; Keyflux's own pages, listed ones and requests
// without Origin go on to authentication (401 here: the fake finds no one).
func TestOriginCheckUnderAuth(t *testing.T) {
	a := newCORSApp(t, modeOnly(auth.ModeSpringSession), "https://app.example")
	for _, c := range []struct {
		origin, target string
		headers        []string
		status         int
	}{
		{origin: "https://evil.example", target: "/api/identity", status: 403},
		{origin: "https://evil.example", target: "/streams/keyspace?pattern=a", status: 403},
		{origin: "https://evil.example", target: "/", status: 403},
		{origin: "null", target: "/api/identity", status: 403},
		{origin: "http://example.com.evil.example", target: "/api/identity", status: 403},
		{origin: "https://example.com", target: "/api/identity", status: 403}, // another scheme is another origin
		{origin: "http://example.com", target: "/api/identity", status: 401},  // its own
		{origin: "HTTP://EXAMPLE.COM", target: "/api/identity", status: 401},
		{origin: "https://app.example", target: "/api/identity", status: 401},
		{origin: "", target: "/api/identity", status: 401},
		// Behind a TLS proxy, the page's origin is the one the proxy serves.
		{origin: "https://kf.example", target: "/api/identity", headers: []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "kf.example"}, status: 401},
		// Health stays open to everyone.
		{origin: "https://evil.example", target: "/healthz", status: 200},
		{origin: "null", target: "/readyz", status: 200},
	} {
		headers := c.headers
		if c.origin != "" {
			headers = append(headers, "Origin", c.origin)
		}
		resp, body := a.do("GET", c.target, headers...)
		if resp.StatusCode != c.status {
			t.Errorf("GET %s from %q: %d %v, want %d", c.target, c.origin, resp.StatusCode, body, c.status)
			continue
		}
		if c.status == 403 {
			if msg, _ := body["error"].(string); !strings.HasPrefix(msg, "origin ") || !strings.HasSuffix(msg, " is not allowed (--allow-origin)") {
				t.Errorf("GET %s from %q: error %q", c.target, c.origin, msg)
			}
			if len(corsOf(resp)) != 0 {
				t.Errorf("a refused origin got CORS headers %v", corsOf(resp))
			}
		}
		if c.status == 401 && c.origin == "https://app.example" &&
			(corsOf(resp)["Access-Control-Allow-Origin"] != c.origin || resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("a listed page cannot read its 401: CORS %v, header %v", corsOf(resp), resp.Header)
		}
	}
	// The foreign page's preflight is refused too; the listed one's answered.
	if resp, _ := a.do("OPTIONS", "/api/channels/x", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"); resp.StatusCode != 403 {
		t.Errorf("foreign preflight under auth: %d", resp.StatusCode)
	}
	if a.hub.Topics() != 0 || a.sink.Clients() != 0 {
		t.Fatalf("refused requests subscribed: %d topics, %d clients", a.hub.Topics(), a.sink.Clients())
	}
}

// With "*" and auth on, any page may call Keyflux, but not with the
// visitor's cookies: "*" never allows credentials.
func TestOriginCheckAnyOriginUnderAuth(t *testing.T) {
	a := newCORSApp(t, modeOnly(auth.ModeJWT), "*")
	if resp, _ := a.do("GET", "/api/identity", "Origin", "https://any.example", "Authorization", "Bearer x"); resp.StatusCode != 401 {
		t.Errorf("foreign page without cookies under *: %d, want 401 (on to authentication)", resp.StatusCode)
	}
	resp, body := a.do("GET", "/api/identity", "Origin", "https://any.example", "Cookie", "keyflux_token=x")
	if resp.StatusCode != 403 || body["error"] == nil {
		t.Errorf("foreign page with cookies under *: %d %v, want 403", resp.StatusCode, body)
	}
	if resp, _ := a.do("GET", "/api/identity", "Origin", "http://example.com", "Cookie", "keyflux_token=x"); resp.StatusCode != 401 {
		t.Errorf("own page with cookies under *: %d, want 401", resp.StatusCode)
	}
}

// Under --auth none, no origin is refused (nothing is the visitor's).
func TestOriginCheckOffWithoutAuth(t *testing.T) {
	for _, authn := range []auth.Authenticator{nil, modeOnly(auth.ModeNone)} {
		a := newCORSApp(t, authn, "https://app.example")
		// (The fake "none" finds no identity: 401, past the origin check.)
		if resp, _ := a.do("GET", "/api/identity", "Origin", "https://evil.example"); resp.StatusCode == 403 {
			t.Errorf("auth %v: foreign origin refused", authn)
		}
	}
}

// corsHeader copies what the middleware set, as lines the sink accepts.
func TestCORSHeaderForStreams(t *testing.T) {
	app := fiber.New()
	useCORS(app, Config{AllowOrigins: []string{"https://app.example"}})
	h := &handler{}
	var got string
	app.Get("/streams/x", func(c *fiber.Ctx) error {
		got = h.corsHeader(c)
		return nil
	})
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/streams/x")
	ctx.Request.Header.Set("Origin", "https://app.example")
	app.Handler()(&ctx)
	want := "Access-Control-Allow-Origin: https://app.example\r\nAccess-Control-Allow-Credentials: true\r\n" +
		"Access-Control-Expose-Headers: " + corsExposed + "\r\nVary: Origin\r\n"
	if got != want {
		t.Fatalf("corsHeader = %q, want %q", got, want)
	}
	var lines []string
	eachHeaderLine(got, func(name, value string) { lines = append(lines, name+"="+value) })
	if len(lines) != 4 || lines[3] != "Vary=Origin" {
		t.Fatalf("eachHeaderLine: %q", lines)
	}
}
