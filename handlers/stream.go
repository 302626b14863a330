package handlers

import (
	"context"
	"net"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/handlers/sse"
	"github.com/keyflux/keyflux/streams"
)

const maxIDLength = 128

// source turns a stream request into the specs of its topics: name is what
// the path names after the source (a channel, a stream key; "" when
// nothing), q the query. Every stream endpoint and every sub= of a combined
// stream goes through one.
type source func(ctx context.Context, h *handler, who *auth.Identity, name string, q url.Values) (request, error)

// request is what a source asks for: usually one spec; a key watch is one
// spec per key, seen by the client as one stream (group is then the data of
// its single "connected" event).
type request struct {
	specs []streams.Spec
	group map[string]any
}

func single(spec streams.Spec) (request, error) { return request{specs: []streams.Spec{spec}}, nil }

// joins are the hub's joins for the request.
func (r request) joins() []streams.Join {
	var g *streams.Group
	if r.group != nil {
		g = &streams.Group{Describe: r.group}
	}
	joins := make([]streams.Join, len(r.specs))
	for i, spec := range r.specs {
		joins[i] = streams.Join{Spec: spec, Group: g}
	}
	return joins
}

// serve is the handler of one stream endpoint.
func (h *handler) serve(src source) fiber.Handler {
	return func(c *fiber.Ctx) error {
		q, err := query(c)
		if err != nil {
			return err
		}
		req, err := h.request(c.UserContext(), src, identity(c), strings.Clone(c.Params("*")), q)
		if err != nil {
			return err
		}
		return h.stream(c, q, req.joins(), 1)
	}
}

// request is src's request with its operators after every spec.
func (h *handler) request(ctx context.Context, src source, who *auth.Identity, name string, q url.Values) (request, error) {
	req, err := src(ctx, h, who, name, q)
	if err != nil {
		return request{}, err
	}
	ops, err := parseOps(q)
	if err != nil {
		return request{}, err
	}
	for i, spec := range req.specs {
		if req.specs[i], err = streams.WithOps(spec, ops, h.cfg.Hub.Metrics()); err != nil {
			return request{}, invalid(err.Error())
		}
	}
	return req, nil
}

// lastEventID is where a client resumes: the Last-Event-ID header a
// reconnecting EventSource sends, or the lastEventId query parameter, since
// a first connect cannot set headers.
func lastEventID(c *fiber.Ctx, q url.Values) (string, error) {
	id := strings.Clone(c.Get("Last-Event-ID"))
	if id == "" {
		var err error
		if id, err = one(q, "lastEventId"); err != nil {
			return "", err
		}
	}
	if len(id) > maxIDLength {
		return "", invalid("Last-Event-ID is longer than 128 bytes")
	}
	if err := plainText("Last-Event-ID", id); err != nil {
		return "", err
	}
	return id, nil
}

// stream answers a request with an SSE stream of specs, after reading what
// applies to the whole connection (where to resume, the slow-consumer
// policy). Nothing is subscribed until the connection is handed over, so a
// request that fails before that leaves nothing behind.
// cost is what the stream takes of its address's rate: a combined stream
// pays for each of its subs.
func (h *handler) stream(c *fiber.Ctx, q url.Values, joins []streams.Join, cost int) error {
	who := identity(c)
	if expired(who) {
		return h.unauthenticated(c, &auth.InvalidError{Reason: "token expired"})
	}
	lastID, err := lastEventID(c, q)
	if err != nil {
		return err
	}
	policy, err := parsePolicy(q)
	if err != nil {
		return err
	}
	hub := h.cfg.Hub
	subscribe := func(r streams.Receiver) ([]*streams.Subscription, error) {
		return hub.SubscribeAll(joins, r, lastID)
	}
	sink := h.cfg.Sink
	header := h.corsHeader(c)        // the sink writes the head: Fiber's headers are not sent
	release, err := h.admit(c, cost) // after validation: bad input costs no token
	if err != nil {
		return err
	}
	ctx := c.Context()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(conn net.Conn) {
		conn = socket(conn) // kept after this returns
		if err := sink.Serve(conn, sse.Stream{Policy: policy, Header: header, Until: until(who), Subscribe: subscribe}, release); err != nil {
			h.refuse(conn, err, header) // nothing was written yet: a real error response
		}
	})
	return nil
}
