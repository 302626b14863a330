package handlers

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"

	"github.com/keyflux/keyflux/handlers/auth"
)

// CORS: pages on the origins of --allow-origin may use the API and streams
// with the visitor's cookies. Fiber's cors middleware answers preflights and
// sets the headers of ordinary responses; a stream's head is written by the
// sink, which gets the same headers from corsHeader.

// corsMaxAge is how long (seconds) a browser may reuse a preflight's answer.
const corsMaxAge = 600

const (
	corsMethods = "GET,POST,OPTIONS"
	corsHeaders = "Authorization,Content-Type,Last-Event-ID"
	// corsExposed lets a page read why it was refused and when to retry.
	corsExposed = "Retry-After,WWW-Authenticate"
)

// ParseOrigins checks and normalizes --allow-origin: exact origins
// (scheme://host[:port], http or https, lower case, no path), or "*" alone.
func ParseOrigins(list []string) ([]string, error) {
	if len(list) == 1 && list[0] == "*" {
		return list, nil
	}
	out := make([]string, 0, len(list))
	for _, o := range list {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func normalizeOrigin(o string) (string, error) {
	bad := func(why string) error { return fmt.Errorf("origin %q: %s", o, why) }
	if o == "*" {
		return "", errors.New(`"*" allows every origin: it must stand alone`)
	}
	u, err := url.Parse(o)
	if err != nil {
		return "", bad("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", bad("want http://host[:port] or https://host[:port]")
	}
	if u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", bad("an origin is scheme://host[:port], without path, query or user")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || strings.ContainsFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':')
	}) {
		return "", bad("want a host name or address (wildcards are not origins)")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", bad("bad port")
		}
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// origins is the parsed --allow-origin.
type origins struct {
	any    bool // "*": every origin, never with credentials
	listed map[string]bool
}

func newOrigins(list []string) origins {
	o := origins{listed: make(map[string]bool, len(list))}
	for _, s := range list {
		if s == "*" {
			o.any = true
		}
		o.listed[s] = true
	}
	return o
}

// allows reports whether origin (an Origin header) gets CORS headers. The
// match is Fiber's: the header lower-cased against normalized origins.
func (o origins) allows(origin string) bool {
	return o.any || o.listed[strings.ToLower(origin)]
}

// useCORS installs the origin check and CORS in front of every route but
// the health checks. cfg.AllowOrigins must have passed ParseOrigins.
func useCORS(app *fiber.App, cfg Config) {
	list, err := ParseOrigins(cfg.AllowOrigins)
	if err != nil {
		panic("handlers: AllowOrigins: " + err.Error())
	}
	o := newOrigins(list)
	if cfg.Auth != nil && cfg.Auth.Mode() != auth.ModeNone {
		app.Use(checkOrigin(o))
	}
	mw := corsMiddleware(o, list)
	app.Use("/api", mw)
	app.Use("/streams", mw)
}

// checkOrigin refuses, under --auth jwt or spring-session, a request from a
// page that is neither Keyflux's own nor listed, before anything reads its
// credentials: a foreign page cannot use a visitor's cookie. With "*", a
// foreign page may call Keyflux but not with credentials, so one whose
// request carries cookies is refused. "Origin: null" (sandboxed frames,
// files) is foreign.
func checkOrigin(o origins) fiber.Handler {
	return func(c *fiber.Ctx) error {
		origin := c.Get(fiber.HeaderOrigin)
		if origin == "" {
			return c.Next()
		}
		switch c.Path() {
		case "/healthz", "/readyz", "/keyflux.js", "/keyflux.d.ts": // no data: code any page may load
			return c.Next()
		}
		lower := strings.ToLower(origin)
		if lower == ownOrigin(c) || o.listed[lower] && !o.any ||
			o.any && len(c.Request().Header.Peek(fiber.HeaderCookie)) == 0 {
			return c.Next()
		}
		c.Vary(fiber.HeaderOrigin)
		return apiError(c, fiber.StatusForbidden, originRefused(origin))
	}
}

// ownOrigin is the origin the request was sent to, as a proxy in front
// tells it (X-Forwarded-Proto and -Host: a page cannot set those on a
// cross-origin request without a preflight, which they are not allowed in).
func ownOrigin(c *fiber.Ctx) string {
	base := strings.ToLower(c.BaseURL())
	if s, ok := strings.CutSuffix(base, ":80"); ok && strings.HasPrefix(base, "http://") {
		return s
	}
	if s, ok := strings.CutSuffix(base, ":443"); ok && strings.HasPrefix(base, "https://") {
		return s
	}
	return base
}

func originRefused(origin string) string {
	if len(origin) > 100 {
		origin = origin[:100] + "..."
	}
	return "origin " + strconv.Quote(origin) + " is not allowed (--allow-origin)"
}

// corsMiddleware is Fiber's cors for the listed origins. A request from an
// unlisted origin gets no CORS header at all (Fiber would still send its
// Max-Age and Expose-Headers), and its preflight a 403 that says why.
func corsMiddleware(o origins, list []string) fiber.Handler {
	var allow fiber.Handler
	if len(list) > 0 {
		allow = cors.New(cors.Config{
			AllowOrigins:     strings.Join(list, ","),
			AllowMethods:     corsMethods,
			AllowHeaders:     corsHeaders,
			ExposeHeaders:    corsExposed,
			AllowCredentials: !o.any, // Fiber refuses credentials with "*"
			MaxAge:           corsMaxAge,
		})
	}
	return func(c *fiber.Ctx) error {
		origin := c.Get(fiber.HeaderOrigin)
		if allow != nil && (origin == "" || o.allows(origin)) {
			return allow(c)
		}
		if origin == "" {
			return c.Next()
		}
		if allow != nil {
			c.Vary(fiber.HeaderOrigin) // the answer depends on it: no cache may hand it to a listed origin
		}
		if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
			return apiError(c, fiber.StatusForbidden, originRefused(origin))
		}
		return c.Next()
	}
}

// corsResponseHeaders are what corsHeader copies: what an actual (not
// preflight) response of Fiber's cors carries, Max-Age aside.
var corsResponseHeaders = []string{
	fiber.HeaderAccessControlAllowOrigin,
	fiber.HeaderAccessControlAllowCredentials,
	fiber.HeaderAccessControlExposeHeaders,
	fiber.HeaderVary,
}

// corsHeader is the CORS part of the response head for a request whose
// response bypasses Fiber (a hijacked stream): header lines ending in
// "\r\n", copied from what the cors middleware set on c's response, so that
// a stream and an ordinary response always agree.
func (h *handler) corsHeader(c *fiber.Ctx) string {
	var b strings.Builder
	for _, name := range corsResponseHeaders {
		if v := c.Response().Header.Peek(name); len(v) > 0 {
			b.WriteString(name)
			b.WriteString(": ")
			b.Write(v)
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// eachHeaderLine calls f with the name and value of each line of a header
// built by corsHeader.
func eachHeaderLine(header string, f func(name, value string)) {
	for header != "" {
		var line string
		line, header, _ = strings.Cut(header, "\r\n")
		if name, value, ok := strings.Cut(line, ": "); ok {
			f(name, value)
		}
	}
}
