package handlers

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

const maxKeyLength = 1024

// key serves GET /api/keys/<key>: a key's type, TTL and value right now, in
// the shape of a key watch snapshot. The dashboard reads it to fill its pin
// panel when no key watch stream is available. The key is path-escaped
// (encodeURIComponent), so keys with slashes survive routing.
func (h *handler) key(c *fiber.Ctx) error {
	if h.cfg.ReadKey == nil {
		return fiber.ErrNotFound
	}
	key, err := url.PathUnescape(c.Params("*"))
	if err != nil {
		return invalid("key is not a valid escaped path")
	}
	if key == "" {
		return invalid("key is empty")
	}
	if len(key) > maxKeyLength {
		return invalid("key is longer than " + strconv.Itoa(maxKeyLength) + " bytes")
	}
	if err := plainText("key", key); err != nil {
		return err
	}
	if db := c.Query("db"); db != "" && db != strconv.Itoa(h.cfg.DefaultDB) {
		return invalid("db: only database " + strconv.Itoa(h.cfg.DefaultDB) + " can be read")
	}
	if !h.cfg.Expose.AllowsKey(key) {
		return forbidden("key " + strconv.Quote(key) + " is outside the exposed prefixes")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	st, err := h.cfg.ReadKey(ctx, key)
	if err != nil {
		return apiError(c, fiber.StatusBadGateway, "redis: "+err.Error())
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(st)
}
