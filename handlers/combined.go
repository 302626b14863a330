package handlers

import (
	"context"
	"maps"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

// maxSubs bounds the subscriptions of one combined stream.
const maxSubs = 32

var subName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// sources are what a combined stream's subscriptions may name, by the
// path of their own endpoint below /streams/. Log streams are not among
// them: their ids are Redis entry ids, which one Last-Event-ID for the
// whole connection could not carry next to the others.
func (h *handler) sources() map[string]source {
	return map[string]source{
		"keyspace": keyspace,
		"keys":     keyWatch,
		"channels": channels,
	}
}

// combined serves GET /streams?sub=<name>:<source>[/<name>][?<query>]&sub=...:
// several subscriptions on one connection, since a browser has only six
// HTTP/1.1 connections per site. Each sub is written as the path and query
// of its own endpoint, URL-encoded as one value, for example
// sub=orders:keyspace?pattern%3Dorder:*%26events%3Dset.
func (h *handler) combined(c *fiber.Ctx) error {
	q, err := query(c)
	if err != nil {
		return err
	}
	for name := range q {
		if name != "sub" && name != "lastEventId" && name != "slow" {
			return invalid("unknown parameter " + strconv.Quote(name) + " (operators go inside each sub)")
		}
	}
	subs := q["sub"]
	if len(subs) == 0 {
		return invalid("sub is required: sub=<name>:<stream>?<query>")
	}
	if len(subs) > maxSubs {
		return invalid("more than " + strconv.Itoa(maxSubs) + " subs")
	}
	var joins []streams.Join
	seen := map[string]bool{}
	for _, sub := range subs {
		req, name, err := h.sub(c.UserContext(), identity(c), sub)
		if err != nil {
			return err
		}
		if seen[name] {
			return invalid("sub " + strconv.Quote(name) + " is named twice")
		}
		seen[name] = true
		joins = append(joins, req.joins()...)
	}
	return h.stream(c, q, joins, len(subs))
}

// sub parses one "<name>:<source>[/<name>][?<query>]".
func (h *handler) sub(ctx context.Context, who *auth.Identity, s string) (request, string, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || !subName.MatchString(name) {
		return request{}, "", invalid("sub " + strconv.Quote(s) + ": want <name>:<stream>?<query>, the name of letters, digits, _ and -")
	}
	path, rawQuery, _ := strings.Cut(rest, "?")
	src, arg, _ := strings.Cut(path, "/")
	parse, ok := h.sources()[src]
	if src == "log" {
		return request{}, "", invalid("sub " + strconv.Quote(name) + ": log streams resume by Redis entry id and cannot be combined; open them on their own")
	}
	if !ok {
		return request{}, "", invalid("sub " + strconv.Quote(name) + ": unknown stream " + strconv.Quote(src))
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return request{}, "", invalid("sub " + strconv.Quote(name) + ": " + err.Error())
	}
	for _, common := range []string{"lastEventId", "slow"} {
		if q.Has(common) {
			return request{}, "", invalid("sub " + strconv.Quote(name) + ": " + common + " applies to the whole stream")
		}
	}
	req, err := h.request(ctx, parse, who, arg, q)
	if err != nil {
		if br, ok := err.(*badRequest); ok {
			br.msg = "sub " + strconv.Quote(name) + ": " + br.msg
		}
		return request{}, "", err
	}
	for i, spec := range req.specs {
		req.specs[i] = streams.Tagged(spec, name)
	}
	if req.group != nil {
		req.group = maps.Clone(req.group)
		req.group["sub"] = name
	}
	return req, name, nil
}
