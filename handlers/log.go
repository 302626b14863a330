package handlers

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/streams"
)

const maxBacklog = 10000

// log serves GET /streams/log/<stream-key>?from=<id>|backlog=<n>.
func (h *handler) log(c *fiber.Ctx) error {
	q, err := h.logQuery(c)
	if err != nil {
		return err
	}
	lastID, err := lastEventID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := h.cfg.Logs.Check(ctx, q.Key); err != nil {
		if errors.Is(err, streams.ErrNotStream) {
			return &badRequest{fiber.StatusConflict, err.Error()}
		}
		return &badRequest{fiber.StatusServiceUnavailable, "redis unreachable: " + err.Error()}
	}
	return h.stream(c, lastID, h.cfg.Logs.Stream(q))
}

func (h *handler) logQuery(c *fiber.Ctx) (streams.LogQuery, error) {
	var q streams.LogQuery
	key, err := pathName(c, "stream key")
	if err != nil {
		return q, err
	}
	if key == "" {
		return q, invalid("give a stream key: /streams/log/<stream-key>")
	}
	q.Key = key
	from, backlog := c.Query("from"), c.Query("backlog")
	if from != "" && backlog != "" {
		return q, invalid("give from or backlog, not both")
	}
	if from != "" {
		if _, ok := streams.ParseEntryID(from); !ok {
			return q, invalid("from must be a stream entry id (<ms>-<seq> or <ms>)")
		}
		q.From = strings.Clone(from)
	}
	if backlog != "" {
		n, err := strconv.Atoi(backlog)
		if err != nil || n < 1 || n > maxBacklog {
			return q, invalid("backlog must be a number from 1 to " + strconv.Itoa(maxBacklog))
		}
		q.Backlog = n
	}
	if !h.cfg.Expose.AllowsKey(q.Key) {
		return q, forbidden("stream key " + strconv.Quote(q.Key) + " is outside the exposed prefixes")
	}
	return q, nil
}
