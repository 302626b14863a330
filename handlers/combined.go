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

// maxJoins bounds the topics one combined stream joins (a sub watching
// several keys joins one per key).
const maxJoins = 1024

var subName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// sources are what a combined stream's subscriptions may name, by the
// path of their own endpoint below /streams/. Subs with ids of their own
// source (log streams, journaled keyspace and channel streams) resume
// exactly: the connection's Last-Event-ID is then a position holding one
// Redis entry id per such sub (streams.Position).
func (h *handler) sources() map[string]source {
	return map[string]source{
		"keyspace": keyspace,
		"keys":     keyWatch,
		"channels": channels,
		"log":      streamLog,
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
		if name != "sub" && name != "set" && name != "fresh" && name != "lastEventId" && name != "slow" {
			return invalid("unknown parameter " + strconv.Quote(name) + " (operators go inside each sub)")
		}
	}
	subs := q["sub"]
	if set := q["set"]; len(set) > 0 {
		if len(subs) > 0 || len(set) > 1 {
			return invalid("set names the subs: give one set and no sub")
		}
		if subs, err = h.loadSet(c, set[0]); err != nil {
			return err
		}
	}
	fresh := freshSubs(q["fresh"])
	if c.Get("Last-Event-ID") != "" {
		// A browser's own reconnect repeats the URL: by now the fresh subs
		// have their place in the id it sends.
		fresh = nil
	}
	joins, err := h.subs(c, subs, fresh)
	if err != nil {
		return err
	}
	// A combined stream pays for the topics it starts (at least one): a
	// page that changes its subs, a browser's reconnect or a tab handover
	// rejoin live topics at the price of one stream.
	keys := make([]string, 0, len(joins))
	for _, j := range joins {
		keys = append(keys, j.Spec.Key())
	}
	return h.stream(c, q, joins, max(1, h.cfg.Hub.Starting(keys)))
}

// freshSubs reads fresh=<name>,<name>...: subs added to a stream that
// resumes from ?lastEventId=, which start now instead of catching up (and
// so cause no reset).
func freshSubs(values []string) map[string]bool {
	fresh := map[string]bool{}
	for _, v := range values {
		for name := range strings.SplitSeq(v, ",") {
			fresh[name] = true
		}
	}
	return fresh
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

// subs parses a combined stream's subs (from the query or a named set) into
// its joins: each checked as its own endpoint would, names unique.
func (h *handler) subs(c *fiber.Ctx, list []string, fresh map[string]bool) ([]streams.Join, error) {
	if len(list) == 0 {
		return nil, invalid("sub is required: sub=<name>:<stream>?<query>")
	}
	if len(list) > maxSetSubs {
		return nil, invalid("more than " + strconv.Itoa(maxSetSubs) + " subs")
	}
	var joins []streams.Join
	seen := map[string]bool{}
	durable := 0
	for _, sub := range list {
		req, name, err := h.sub(c.UserContext(), identity(c), sub)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, invalid("sub " + strconv.Quote(name) + " is named twice")
		}
		seen[name] = true
		for _, j := range req.joins() {
			j.Fresh = fresh[name]
			if _, ok := j.Spec.(streams.Durable); ok {
				durable++
			}
			joins = append(joins, j)
		}
	}
	for name := range fresh {
		if !seen[name] {
			return nil, invalid("fresh names " + strconv.Quote(name) + ", which is not a sub")
		}
	}
	// One Last-Event-ID holds a position in each sub with ids of its own.
	if durable > streams.PositionMaxJournals {
		return nil, invalid("more than " + strconv.Itoa(streams.PositionMaxJournals) +
			" subs with ids of their own (log streams; keyspace and channel streams with --journal) on one connection: open another for the rest")
	}
	if len(joins) > maxJoins {
		return nil, invalid("more than " + strconv.Itoa(maxJoins) + " streams (keys watched included) on one connection")
	}
	return joins, nil
}
