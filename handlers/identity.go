package handlers

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

// identityKey is where identify leaves a request's identity (c.Locals).
type identityKey struct{}

// identify finds who the request comes from before anything else is read,
// so that a request without a valid identity learns nothing (not even
// whether its query was valid) and costs no Redis work past the check.
func (h *handler) identify(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodPost && h.isPublisher(c) {
		c.Locals(identityKey{}, publisher)
		return c.Next()
	}
	if h.cfg.Auth == nil {
		c.Locals(identityKey{}, auth.Anyone)
		return c.Next()
	}
	id, err := h.cfg.Auth.Authenticate(c.UserContext(), fiberRequest{c})
	if err != nil {
		return h.unauthenticated(c, err)
	}
	c.Locals(identityKey{}, id)
	return c.Next()
}

// unauthenticated answers a request whose identity is missing or refused:
// 401 with the challenge and what the dashboard needs to ask for a token,
// or 503 when the identity could not be checked (Redis unreachable).
func (h *handler) unauthenticated(c *fiber.Ctx, err error) error {
	if !auth.IsUnauthenticated(err) {
		return apiError(c, fiber.StatusServiceUnavailable, "identity could not be checked: "+err.Error())
	}
	challenge := `Bearer realm="keyflux"`
	msg := "no credentials: send Authorization: Bearer <token>, or the " + h.cfg.AuthCookie + " cookie"
	if err != auth.ErrNoCredentials {
		challenge += `, error="invalid_token"`
		msg = "credentials refused: " + err.Error()
	}
	c.Set(fiber.HeaderWWWAuthenticate, challenge)
	return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{
		"error": msg, "auth": h.cfg.Auth.Mode(), "cookie": h.cfg.AuthCookie,
	})
}

// identity is the request's identity, found by identify.
func identity(c *fiber.Ctx) *auth.Identity {
	if id, ok := c.Locals(identityKey{}).(*auth.Identity); ok {
		return id
	}
	return auth.Anyone
}

// apiIdentity serves GET /api/identity: who the caller is, what it may read
// and until when, for pages (the dashboard) to show and to know when to
// refresh a token.
func (h *handler) apiIdentity(c *fiber.Ctx) error {
	id := identity(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	body := fiber.Map{"auth": id.Mode}
	if id.Mode == auth.ModeNone {
		return c.JSON(body)
	}
	body["subject"] = id.Subject
	if h.cfg.AuthCookie != "" {
		body["cookie"] = h.cfg.AuthCookie // where a page keeps its token
	}
	if id.Session != "" {
		body["session"] = id.Session
	}
	body["expires"] = unixMillis(id.Expires)
	body["session_expires"] = unixMillis(id.SessionExpires)
	s := id.Scopes
	db := s.DB
	if len(db) == 0 {
		db = []int{h.cfg.DefaultDB}
	}
	body["scopes"] = fiber.Map{
		"keys": nonNil(s.Keys), "channels": nonNil(s.Channels), "streams": nonNil(s.Streams),
		"publish": nonNil(s.Publish), "db": db,
	}
	return c.JSON(body)
}

func unixMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func nonNil(s auth.Selectors) auth.Selectors {
	if s == nil {
		return auth.Selectors{}
	}
	return s
}

// fiberRequest is a Fiber request as auth reads it.
type fiberRequest struct{ c *fiber.Ctx }

func (r fiberRequest) Header(name string) string { return strings.Clone(r.c.Get(name)) }
func (r fiberRequest) Cookie(name string) string { return strings.Clone(r.c.Cookies(name)) }
func (r fiberRequest) Query(name string) string  { return strings.Clone(r.c.Query(name)) }

// outOfScope is the 403 of a request for something its identity may not use.
func outOfScope(what, name string) error {
	return forbidden(what + " " + strconv.Quote(name) + " is outside your scopes")
}

// until ends a stream when the identity that opened it ends (its token
// expires, its session is deleted) with one auth-expired event: the browser
// reconnects with a fresh token or cookie and resumes with Last-Event-ID.
func until(who *auth.Identity) func(end func(last *streams.Frame)) (stop func()) {
	if who == auth.Anyone {
		return nil
	}
	return func(end func(last *streams.Frame)) func() {
		return who.Watch(func(reason string) {
			f, _ := streams.EncodeFrame("", "auth-expired", map[string]string{"reason": reason}, nil)
			end(f)
		})
	}
}

// expired refuses a stream whose identity has already ended: within the
// token leeway a one-off request still passes, but a stream would end at once.
func expired(who *auth.Identity) bool {
	return !who.Expires.IsZero() && !time.Now().Before(who.Expires)
}
