package handlers

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/sse"
	"github.com/keyflux/keyflux/streams"
)

// commonParams are accepted by every stream, besides its source's own.
var commonParams = []string{"filter", "map", "throttle", "buffer", "lastEventId", "slow"}

// query parses a request's query string. Parameters are copied, so they
// outlive the request (fasthttp reuses its buffers).
func query(c *fiber.Ctx) (url.Values, error) {
	q, err := url.ParseQuery(string(c.Context().QueryArgs().QueryString()))
	if err != nil {
		return nil, invalid("query: " + err.Error())
	}
	q.Del("access_token") // read by auth, never by a source or a log
	return q, nil
}

// only rejects parameters that neither the source nor every stream knows,
// so that a typo ("fliter") is an error, not a silently unfiltered stream.
func only(q url.Values, known ...string) error {
	for name := range q {
		if !slices.Contains(known, name) && !slices.Contains(commonParams, name) {
			return invalid("unknown parameter " + strconv.Quote(name))
		}
	}
	return nil
}

// one returns the single value of a parameter ("" when absent).
func one(q url.Values, name string) (string, error) {
	switch v := q[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", invalid(name + " is given more than once")
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

// parseOps reads filter, map, throttle and buffer, and compiles them.
func parseOps(q url.Values) (*streams.Operators, error) {
	var o streams.Ops
	var err error
	if o.Filter, err = one(q, "filter"); err != nil {
		return nil, err
	}
	if o.Map, err = one(q, "map"); err != nil {
		return nil, err
	}
	if t, err := one(q, "throttle"); err != nil {
		return nil, err
	} else if t != "" {
		if o.Throttle, err = time.ParseDuration(t); err != nil || o.Throttle <= 0 {
			return nil, invalid("throttle must be a duration such as 500ms or 2s")
		}
	}
	// buffer=<duration> and/or buffer=<count>, as two parameters or "2s,50".
	for _, v := range q["buffer"] {
		for _, part := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(part); err == nil && o.BufferCount == 0 && n > 0 {
				o.BufferCount = n
			} else if d, err := time.ParseDuration(part); err == nil && o.BufferTime == 0 && d > 0 {
				o.BufferTime = d
			} else {
				return nil, invalid("buffer takes one duration (such as 2s) and/or one count (such as 50)")
			}
		}
	}
	ops, err := o.Compile()
	var ee *streams.ExprError
	if errors.As(err, &ee) {
		return nil, &badRequest{status: fiber.StatusBadRequest, msg: err.Error(),
			extra: fiber.Map{"position": fiber.Map{"line": ee.Line, "column": ee.Column}}}
	}
	if err != nil {
		return nil, invalid(err.Error())
	}
	return ops, nil
}

// parsePolicy reads ?slow=, the slow-consumer policy.
func parsePolicy(q url.Values) (sse.Policy, error) {
	p, err := one(q, "slow")
	if err != nil {
		return "", err
	}
	policy, err := sse.ParsePolicy(p)
	if err != nil {
		return "", invalid(err.Error())
	}
	return policy, nil
}
