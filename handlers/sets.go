package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/limit"
	"github.com/keyflux/keyflux/streams"
)

// SetStore keeps named sets of combined-stream subs: a page with more subs
// than a URL carries (proxies refuse request lines past about 8 KiB) POSTs
// them to /api/sets and opens /streams?set=<id>.
type SetStore interface {
	// Save stores subs; the id is short and URL-safe.
	Save(ctx context.Context, subs []string) (id string, expires time.Time, err error)
	// Load returns a set's subs (streams.ErrUnknownSet when there is none)
	// and keeps it alive.
	Load(ctx context.Context, id string) ([]string, error)
}

const (
	// maxSetSubs bounds the subs of a set, and of any combined stream.
	maxSetSubs = 200
	// maxSetBytes bounds a set's JSON body.
	maxSetBytes = 32 << 10
)

// createSet serves POST /api/sets {"subs": ["<name>:<stream>?<query>", ...]}:
// the subs are checked as a combined stream would check them (syntax,
// expose rules, the caller's scopes), saved, and named by a short id. The
// stream itself checks them again against whoever opens it.
func (h *handler) createSet(c *fiber.Ctx) error {
	if h.cfg.Sets == nil {
		return apiError(c, fiber.StatusNotFound, "named sets are not available")
	}
	body := c.Body()
	if len(body) > maxSetBytes {
		return apiError(c, fiber.StatusRequestEntityTooLarge, "a set's body is at most "+strconv.Itoa(maxSetBytes)+" bytes")
	}
	var req struct {
		Subs []string `json:"subs"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return invalid(`want {"subs": ["<name>:<stream>?<query>", ...]}`)
	}
	if _, err := h.subs(c, req.Subs, nil); err != nil {
		return err
	}
	if h.cfg.Limits != nil {
		ctx := c.Context()
		err := h.cfg.Limits.AllowSet(limit.PeerAddr(ctx.RemoteAddr()), ctx.Request.Header.PeekAll(fiber.HeaderXForwardedFor))
		var refused *limit.Refused
		if errors.As(err, &refused) {
			c.Set(fiber.HeaderRetryAfter, refused.RetryAfterSeconds())
			return apiError(c, refused.Status, refused.Error())
		}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	id, expires, err := h.cfg.Sets.Save(ctx, req.Subs)
	if err != nil {
		return apiError(c, fiber.StatusServiceUnavailable, "saving the set failed: "+err.Error())
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": id, "expires": expires.UTC().Format(time.RFC3339)})
}

// loadSet returns the subs of /streams?set=<id>.
func (h *handler) loadSet(c *fiber.Ctx, id string) ([]string, error) {
	if h.cfg.Sets == nil {
		return nil, &badRequest{status: fiber.StatusNotFound, msg: "named sets are not available"}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	subs, err := h.cfg.Sets.Load(ctx, id)
	switch {
	case errors.Is(err, streams.ErrUnknownSet):
		return nil, &badRequest{status: fiber.StatusNotFound, msg: "unknown or expired set: POST /api/sets again"}
	case err != nil:
		return nil, &badRequest{status: fiber.StatusServiceUnavailable, msg: "reading the set failed: " + err.Error()}
	}
	return subs, nil
}
