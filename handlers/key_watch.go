package handlers

import (
	"context"
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

// keyWatch is the source of GET /streams/keys?key=a&key=b, a key watch: a snapshot of each
// key, then its updates and deletes. Each key is a topic of its own, shared
// by every client watching that key in whatever company; the client's
// topics form one group, so it gets a single "connected" event.
func keyWatch(_ context.Context, h *handler, who *auth.Identity, _ string, params url.Values) (request, error) {
	if h.cfg.KeyWatches == nil {
		return request{}, &badRequest{status: fiber.StatusServiceUnavailable,
			msg: "key watches need client-side caching: Redis 6 or newer, speaking RESP3"}
	}
	if err := only(params, "key"); err != nil {
		return request{}, err
	}
	if err := h.checkDB(h.cfg.DefaultDB); err != nil { // the database watches read
		return request{}, err
	}
	if err := h.scopeDB(who, h.cfg.DefaultDB); err != nil {
		return request{}, err
	}
	keys, err := h.watchedKeys(who, params["key"])
	if err != nil {
		return request{}, err
	}
	specs := make([]streams.Spec, len(keys))
	for i, k := range keys {
		specs[i] = h.cfg.KeyWatches.Stream(k)
	}
	return request{specs: specs, group: map[string]any{"stream": "keys", "db": h.cfg.DefaultDB, "keys": keys}}, nil
}

// watchedKeys validates the repeated key parameter, without duplicates and
// in the order given.
func (h *handler) watchedKeys(who *auth.Identity, raw []string) ([]string, error) {
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
		if !who.Scopes.Keys.AllowsName(k) {
			return nil, outOfScope("key", k)
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
