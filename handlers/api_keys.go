package handlers

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// apiKey serves GET /api/keys/<key>: the key's current state, from the
// client-side cache when it is cached, with 404 when it does not exist.
func (h *handler) apiKey(c *fiber.Ctx) error {
	// The raw path, so that fasthttp's path normalisation cannot change a
	// key ("a//b", "a/../b"); the key is percent-decoded once.
	p := string(c.Context().URI().PathOriginal())
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	k, err := url.PathUnescape(strings.TrimPrefix(p, "/api/keys/"))
	if err != nil {
		return invalid("key is not correctly percent-encoded")
	}
	if err := validKey(k); err != nil {
		return err
	}
	if !h.cfg.Expose.AllowsKey(k) {
		return forbidden("key " + strconv.Quote(k) + " is outside the exposed prefixes")
	}
	if err := h.checkDB(h.cfg.DefaultDB); err != nil { // the database values are read from
		return err
	}
	who := identity(c)
	if err := h.scopeDB(who, h.cfg.DefaultDB); err != nil {
		return err
	}
	if !who.Scopes.Keys.AllowsName(k) {
		return outOfScope("key", k)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	st, err := h.cfg.Values.Read(ctx, k)
	if err != nil {
		return apiError(c, fiber.StatusServiceUnavailable, "reading from Redis failed: "+err.Error())
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if !st.Exists {
		c.Status(fiber.StatusNotFound)
	}
	return c.JSON(st)
}
