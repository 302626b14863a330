package handlers

import (
	"context"
	"net/url"
	"strconv"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

// maxNameLength bounds a key, channel or pattern in a request; Redis allows
// far longer ones, but none that a page should put in a URL.
const maxNameLength = 1024

// channels is the source of GET /streams/channels/<channel> and
// GET /streams/channels?pattern=<glob>.
func channels(_ context.Context, h *handler, who *auth.Identity, path string, params url.Values) (request, error) {
	if err := only(params, "pattern", "encoding", "sharded"); err != nil {
		return request{}, err
	}
	var q streams.ChannelQuery
	name, err := pathName(path, "channel")
	if err != nil {
		return request{}, err
	}
	pattern, err := one(params, "pattern")
	if err != nil {
		return request{}, err
	}
	switch {
	case name != "" && params.Has("pattern"):
		return request{}, invalid("give a channel in the path or a pattern, not both")
	case params.Has("pattern"):
		if pattern == "" {
			return request{}, invalid("pattern is empty")
		}
		if err := checkName("pattern", pattern); err != nil {
			return request{}, err
		}
		q.Name, q.Pattern = pattern, true
	case name != "":
		q.Name = name
	default:
		return request{}, invalid("give a channel (/streams/channels/<channel>) or ?pattern=<glob>")
	}
	if q.Sharded, err = sharded(params["sharded"]); err != nil {
		return request{}, err
	}
	if q.Sharded && q.Pattern {
		return request{}, invalid("sharded pub/sub has no patterns (Redis has no SPSUBSCRIBE): give a channel")
	}
	enc, err := one(params, "encoding")
	if err != nil {
		return request{}, err
	}
	switch enc {
	case "", "text":
	case "base64":
		q.Base64 = true
	default:
		return request{}, invalid("encoding must be text or base64")
	}
	if !q.Pattern && streams.InternalChannel(q.Name) {
		return request{}, forbidden(internalChannel)
	}
	if q.Pattern && !h.cfg.ExposeChannels.AllowsPattern(q.Name) {
		return request{}, forbidden("pattern " + strconv.Quote(q.Name) + " reaches channels outside the exposed prefixes")
	}
	if !q.Pattern && !h.cfg.ExposeChannels.AllowsKey(q.Name) {
		return request{}, forbidden("channel " + strconv.Quote(q.Name) + " is outside the exposed prefixes")
	}
	if q.Pattern && !who.Scopes.Channels.AllowsGlob(q.Name) {
		return request{}, forbidden("pattern " + strconv.Quote(q.Name) + " may reach channels outside your scopes")
	}
	if !q.Pattern && !who.Scopes.Channels.AllowsName(q.Name) {
		return request{}, outOfScope("channel", q.Name)
	}
	return single(h.cfg.Channels.Stream(q))
}

// sharded reads the sharded parameter: true selects sharded pub/sub
// (SSUBSCRIBE, SPUBLISH).
func sharded(values []string) (bool, error) {
	switch len(values) {
	case 0:
		return false, nil
	case 1:
		if b, err := strconv.ParseBool(values[0]); err == nil {
			return b, nil
		}
		return false, invalid("sharded must be true or false")
	}
	return false, invalid("sharded is given more than once")
}

const internalChannel = "channels __keyspace@, __keyevent@ and __redis__: are Redis's own; " +
	"watch keys with /streams/keyspace"

// pathName is the rest of the path after the route's prefix (a channel or
// key may hold slashes), percent-decoded and checked; "" when absent.
func pathName(raw, what string) (string, error) {
	if raw == "" {
		return "", nil
	}
	name, err := url.PathUnescape(raw)
	if err != nil {
		return "", invalid(what + " is not correctly percent-encoded")
	}
	if err := checkName(what, name); err != nil {
		return "", err
	}
	return name, nil
}

func checkName(what, name string) error {
	if len(name) > maxNameLength {
		return invalid(what + " is longer than " + strconv.Itoa(maxNameLength) + " bytes")
	}
	return plainText(what, name)
}
