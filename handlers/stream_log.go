package handlers

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

const maxBacklog = 10000

// streamLog is the source of GET /streams/log/<stream-key>?from=<id>|backlog=<n>:
// a Redis Stream, tailed with exact resume.
func streamLog(ctx context.Context, h *handler, who *auth.Identity, path string, params url.Values) (request, error) {
	if err := only(params, "from", "backlog"); err != nil {
		return request{}, err
	}
	var q streams.StreamLogQuery
	key, err := pathName(path, "stream key")
	if err != nil {
		return request{}, err
	}
	if key == "" {
		return request{}, invalid("give a stream key: /streams/log/<stream-key>")
	}
	q.Key = key
	from, err := one(params, "from")
	if err != nil {
		return request{}, err
	}
	backlog, err := one(params, "backlog")
	if err != nil {
		return request{}, err
	}
	if from != "" && backlog != "" {
		return request{}, invalid("give from or backlog, not both")
	}
	if from != "" {
		if _, ok := streams.ParseEntryID(from); !ok {
			return request{}, invalid("from must be a stream entry id (<ms>-<seq> or <ms>)")
		}
		q.From = from
	}
	if backlog != "" {
		n, err := strconv.Atoi(backlog)
		if err != nil || n < 1 || n > maxBacklog {
			return request{}, invalid("backlog must be a number from 1 to " + strconv.Itoa(maxBacklog))
		}
		q.Backlog = n
	}
	if !h.cfg.Expose.AllowsKey(q.Key) {
		return request{}, forbidden("stream key " + strconv.Quote(q.Key) + " is outside the exposed prefixes")
	}
	if err := h.scopeDB(who, h.cfg.DefaultDB); err != nil {
		return request{}, err
	}
	if !who.Scopes.Streams.AllowsName(q.Key) {
		return request{}, outOfScope("stream key", q.Key)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := h.cfg.StreamLogs.Check(ctx, q.Key); err != nil {
		if errors.Is(err, streams.ErrNotStream) {
			return request{}, &badRequest{status: fiber.StatusConflict, msg: err.Error()}
		}
		return request{}, &badRequest{status: fiber.StatusServiceUnavailable, msg: "redis unreachable: " + err.Error()}
	}
	return single(h.cfg.StreamLogs.Stream(q))
}
