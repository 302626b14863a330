package handlers

import (
	"net"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/streams"
)

const maxIDLength = 128

// lastEventID is where a client resumes: the Last-Event-ID header a
// reconnecting EventSource sends, or the lastEventId query parameter, since
// a first connect cannot set headers.
func lastEventID(c *fiber.Ctx) (string, error) {
	id := c.Get("Last-Event-ID")
	if id == "" {
		id = c.Query("lastEventId")
	}
	if len(id) > maxIDLength {
		return "", invalid("Last-Event-ID is longer than 128 bytes")
	}
	if err := plainText("Last-Event-ID", id); err != nil {
		return "", err
	}
	return strings.Clone(id), nil
}

// plainText rejects invalid UTF-8 and control characters.
func plainText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field + " is not valid UTF-8")
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return invalid(field + " contains control characters")
	}
	return nil
}

// stream answers a validated request with an SSE stream of specs. Nothing is
// subscribed until the connection is handed over, so a request that fails
// before that leaves nothing behind.
func (h *handler) stream(c *fiber.Ctx, lastID string, specs ...streams.Spec) error {
	return h.streamGroup(c, lastID, nil, specs...)
}

// streamGroup is stream for specs the client sees as one stream (g not nil):
// one "connected" event for all of them.
func (h *handler) streamGroup(c *fiber.Ctx, lastID string, g *streams.Group, specs ...streams.Spec) error {
	hub := h.cfg.Hub
	subscribe := func(r streams.Receiver) ([]*streams.Subscription, error) {
		var subs []*streams.Subscription
		for _, spec := range specs {
			s, err := hub.SubscribeGroup(spec, r, lastID, g)
			if err != nil {
				for _, s := range subs {
					s.Close()
				}
				return nil, err
			}
			subs = append(subs, s)
		}
		return subs, nil
	}
	sink := h.cfg.Sink
	ctx := c.Context()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
			conn = u.UnsafeConn() // the socket itself, kept after this returns
		}
		sink.serve(conn, subscribe)
	})
	return nil
}
