package handlers

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/limit"
)

// admit counts a new stream against the limits; release must run when the
// stream ends. A refused stream gets the limit's status, a Retry-After and
// a JSON error, and leaves nothing behind.
func (h *handler) admit(c *fiber.Ctx, cost int) (release func(), err error) {
	if h.cfg.Limits == nil {
		return func() {}, nil
	}
	ctx := c.Context()
	release, err = h.cfg.Limits.AdmitN(limit.PeerAddr(ctx.RemoteAddr()), ctx.Request.Header.PeekAll(fiber.HeaderXForwardedFor), cost)
	var refused *limit.Refused
	if errors.As(err, &refused) {
		c.Set(fiber.HeaderRetryAfter, refused.RetryAfterSeconds())
		return nil, &badRequest{status: refused.Status, msg: refused.Error()}
	}
	return release, err
}
