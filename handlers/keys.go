package handlers

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/streams"
)

// keys is the source of GET /streams/keys?key=a&key=b: a snapshot of each
// key, then its updates and deletes. Each key is a topic of its own, shared
// by every client watching that key in whatever company; the client's
// topics form one group, so it gets a single "connected" event.
func keys(_ context.Context, h *handler, _ string, params url.Values) (request, error) {
	if h.cfg.Keys == nil {
		return request{}, &badRequest{status: fiber.StatusServiceUnavailable,
			msg: "key watches need client-side caching: Redis 6 or newer, speaking RESP3"}
	}
	if err := only(params, "key"); err != nil {
		return request{}, err
	}
	keys, err := h.watchedKeys(params["key"])
	if err != nil {
		return request{}, err
	}
	specs := make([]streams.Spec, len(keys))
	for i, k := range keys {
		specs[i] = h.cfg.Keys.Stream(k)
	}
	return request{specs: specs, group: map[string]any{"stream": "keys", "db": h.cfg.DefaultDB, "keys": keys}}, nil
}

// watchedKeys validates the repeated key parameter, without duplicates and
// in the order given.
func (h *handler) watchedKeys(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, invalid("give at least one key: /streams/keys?key=a&key=b")
	}
	seen := make(map[string]bool, len(raw))
	var keys []string
	for _, k := range raw {
		if err := validKey(k); err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if limit := h.cfg.MaxWatchKeys; limit > 0 && len(keys) > limit {
		return nil, invalid("too many keys: " + strconv.Itoa(len(keys)) + ", at most " + strconv.Itoa(limit))
	}
	for _, k := range keys {
		if !h.cfg.Expose.AllowsKey(k) {
			return nil, forbidden("key " + strconv.Quote(k) + " is outside the exposed prefixes")
		}
	}
	return keys, nil
}

func validKey(k string) error {
	if k == "" {
		return invalid("key is empty")
	}
	return checkName("key", k)
}

// key serves GET /api/keys/<key>: the key's current state, from the
// client-side cache when it is cached, with 404 when it does not exist.
func (h *handler) key(c *fiber.Ctx) error {
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
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	st, err := h.cfg.Values.Read(ctx, k)
	if err != nil {
		return apiError(c, fiber.StatusServiceUnavailable, "reading from Redis failed: "+err.Error())
	}
	if h.cfg.AllowOrigin != "" {
		c.Set(fiber.HeaderAccessControlAllowOrigin, h.cfg.AllowOrigin)
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if !st.Exists {
		c.Status(fiber.StatusNotFound)
	}
	return c.JSON(st)
}
