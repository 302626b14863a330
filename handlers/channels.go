package handlers

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/streams"
)

const maxNameLength = 1024

// channels serves GET /streams/channels/<channel> and
// GET /streams/channels?pattern=<glob>.
func (h *handler) channels(c *fiber.Ctx) error {
	q, err := h.channelQuery(c)
	if err != nil {
		return err
	}
	lastID, err := lastEventID(c)
	if err != nil {
		return err
	}
	return h.stream(c, lastID, h.cfg.Channels.Stream(q))
}

func (h *handler) channelQuery(c *fiber.Ctx) (streams.ChannelQuery, error) {
	var q streams.ChannelQuery
	name, err := pathName(c, "channel")
	if err != nil {
		return q, err
	}
	pattern := c.Query("pattern")
	hasPattern := c.Context().QueryArgs().Has("pattern")
	switch {
	case name != "" && hasPattern:
		return q, invalid("give a channel in the path or a pattern, not both")
	case hasPattern:
		if pattern == "" {
			return q, invalid("pattern is empty")
		}
		if err := checkName("pattern", pattern); err != nil {
			return q, err
		}
		q.Name, q.Pattern = strings.Clone(pattern), true
	case name != "":
		q.Name = name
	default:
		return q, invalid("give a channel (/streams/channels/<channel>) or ?pattern=<glob>")
	}
	switch enc := c.Query("encoding", "text"); enc {
	case "text":
	case "base64":
		q.Base64 = true
	default:
		return q, invalid("encoding must be text or base64")
	}
	if !q.Pattern && streams.InternalChannel(q.Name) {
		return q, forbidden(internalChannel)
	}
	if q.Pattern && !h.cfg.ExposeChannels.AllowsPattern(q.Name) {
		return q, forbidden("pattern " + strconv.Quote(q.Name) + " reaches channels outside the exposed prefixes")
	}
	if !q.Pattern && !h.cfg.ExposeChannels.AllowsKey(q.Name) {
		return q, forbidden("channel " + strconv.Quote(q.Name) + " is outside the exposed prefixes")
	}
	return q, nil
}

const internalChannel = "channels __keyspace@, __keyevent@ and __redis__: are Redis's own; " +
	"watch keys with /streams/keyspace"

// pathName is the rest of the path after the route's prefix (a channel or
// key may hold slashes), percent-decoded and checked; "" when absent.
func pathName(c *fiber.Ctx, what string) (string, error) {
	raw := c.Params("*")
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
	return strings.Clone(name), nil
}

func checkName(what, name string) error {
	if len(name) > maxNameLength {
		return invalid(what + " is longer than " + strconv.Itoa(maxNameLength) + " bytes")
	}
	return plainText(what, name)
}
