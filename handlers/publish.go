package handlers

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

// publishChannel serves POST /api/channels/<channel>[?sharded=true]: the
// JSON body is PUBLISHed (SPUBLISHed) as it is.
func (h *handler) publishChannel(c *fiber.Ctx) error {
	channel, body, err := h.publishRequest(c, "channel", h.cfg.ExposeChannels)
	if err != nil {
		return err
	}
	var values []string
	for _, v := range c.Context().QueryArgs().PeekMulti("sharded") {
		values = append(values, string(v))
	}
	shard, err := sharded(values)
	if err != nil {
		return err
	}
	if streams.InternalChannel(channel) {
		return forbidden(internalChannel)
	}
	if !json.Valid(body) {
		return invalid("body is not valid JSON")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	n, err := h.cfg.Channels.Publish(ctx, channel, shard, body)
	if err != nil {
		return &badRequest{status: fiber.StatusServiceUnavailable, msg: "redis: " + err.Error()}
	}
	return c.JSON(fiber.Map{"receivers": n})
}

// publishStreamLog serves POST /api/log/<stream-key>?maxlen=<n>: the body, a
// JSON object, becomes one entry, its members the fields in order.
func (h *handler) publishStreamLog(c *fiber.Ctx) error {
	key, body, err := h.publishRequest(c, "stream key", h.cfg.Expose)
	if err != nil {
		return err
	}
	fields, err := entryFields(body)
	if err != nil {
		return err
	}
	var maxLen int64
	if s := c.Query("maxlen"); s != "" {
		if maxLen, err = strconv.ParseInt(s, 10, 64); err != nil || maxLen < 1 {
			return invalid("maxlen must be a positive number")
		}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	id, err := h.cfg.StreamLogs.Append(ctx, key, fields, maxLen)
	if errors.Is(err, streams.ErrNotStream) {
		return &badRequest{status: fiber.StatusConflict, msg: err.Error()}
	}
	if err != nil {
		return &badRequest{status: fiber.StatusServiceUnavailable, msg: "redis: " + err.Error()}
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": id})
}

// publisher is the caller holding --publish-token: a back-end, allowed to
// publish to every exposed channel and stream key whatever the auth mode.
var publisher = &auth.Identity{Mode: "publish-token", Subject: "publish-token",
	Scopes: auth.Scopes{Publish: auth.All, AnyDB: true}}

// isPublisher reports whether the request carries --publish-token.
func (h *handler) isPublisher(c *fiber.Ctx) bool {
	got, ok := bearerToken(c.Get(fiber.HeaderAuthorization))
	return ok && h.cfg.PublishToken != "" &&
		subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.PublishToken)) == 1
}

// publishRequest checks what both publishing routes share: the caller may
// publish (with --auth none, by holding --publish-token; with auth on,
// also by an identity whose publish scope covers the name), the name is
// valid and exposed, and the body is within the limit.
func (h *handler) publishRequest(c *fiber.Ctx, what string, expose Expose) (string, []byte, error) {
	who := identity(c)
	if h.cfg.Auth == nil && who != publisher {
		if h.cfg.PublishToken == "" {
			return "", nil, forbidden("publishing is disabled: start Keyflux with --publish-token (KEYFLUX_PUBLISH_TOKEN)")
		}
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="keyflux"`)
		return "", nil, &badRequest{status: fiber.StatusUnauthorized, msg: "missing or wrong publish token (Authorization: Bearer <token>)"}
	}
	name, err := pathName(strings.Clone(c.Params("*")), what)
	if err != nil {
		return "", nil, err
	}
	if name == "" {
		return "", nil, invalid("give a " + what + " in the path")
	}
	if !expose.AllowsKey(name) {
		return "", nil, forbidden(what + " " + strconv.Quote(name) + " is outside the exposed prefixes")
	}
	if err := h.scopeDB(who, h.cfg.DefaultDB); err != nil {
		return "", nil, err
	}
	if !who.Scopes.Publish.AllowsName(name) {
		return "", nil, forbidden("publishing to " + what + " " + strconv.Quote(name) + " is outside your scopes")
	}
	body := c.Body()
	if len(body) > h.cfg.PublishMaxBytes {
		return "", nil, &badRequest{status: fiber.StatusRequestEntityTooLarge,
			msg: "body is larger than " + strconv.Itoa(h.cfg.PublishMaxBytes) + " bytes"}
	}
	return name, body, nil
}

// bearerToken reads "Bearer <token>"; the scheme's name is
// case-insensitive (RFC 9110, section 11.1).
func bearerToken(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

// entryFields reads a JSON object in order: string members keep their
// value, any other member is stored as its JSON text.
func entryFields(body []byte) ([]string, error) {
	if !json.Valid(body) {
		return nil, invalid("body is not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return nil, invalid("body must be a JSON object of fields")
	}
	var fields []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("body: " + err.Error())
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("body: " + err.Error())
		}
		value := string(raw)
		if raw[0] == '"' {
			_ = json.Unmarshal(raw, &value)
		} else {
			var b bytes.Buffer
			_ = json.Compact(&b, raw)
			value = b.String()
		}
		fields = append(fields, name, value)
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, invalid("body: " + err.Error())
	}
	if len(fields) == 0 {
		return nil, invalid("body must have at least one field")
	}
	return fields, nil
}
