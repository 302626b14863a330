package handlers

import (
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/keyflux/keyflux/streams"
)

// topicsRetryAfter is the Retry-After of a stream refused at --max-topics:
// a topic becomes free to release as soon as its last client leaves.
const topicsRetryAfter = 5 * time.Second

// refuse answers a hijacked stream request whose subscription failed before
// the response head was written, with a JSON error like any other route's,
// and closes the connection. header is the stream's CORS header lines, so
// that a page can read why.
func (h *handler) refuse(conn net.Conn, err error, header string) {
	defer conn.Close()
	status, msg := fiber.StatusInternalServerError, "internal error"
	switch {
	case errors.Is(err, streams.ErrTooManyTopics):
		status, msg = fiber.StatusServiceUnavailable, "too many distinct streams are open (--max-topics); retry later"
	case errors.Is(err, streams.ErrClosed):
		status, msg = fiber.StatusServiceUnavailable, "server shutting down"
	}
	body, _ := json.Marshal(fiber.Map{"error": msg})
	var resp fasthttp.Response
	resp.SetStatusCode(status)
	resp.Header.SetContentType(fiber.MIMEApplicationJSON)
	if status == fiber.StatusServiceUnavailable {
		resp.Header.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(topicsRetryAfter/time.Second)))
	}
	eachHeaderLine(header, func(name, value string) { resp.Header.Add(name, value) })
	resp.SetConnectionClose()
	resp.SetBody(body)
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = resp.WriteTo(conn)
}
