package handlers

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/keyflux/keyflux/streams"
)

const (
	maxPatternLength = 1024
	maxDB            = 1 << 16
)

var eventName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// keyspace serves GET /streams/keyspace?pattern=&events=&db=.
func (h *handler) keyspace(c *fiber.Ctx) error {
	q, err := h.keyspaceQuery(c)
	if err != nil {
		return err
	}
	lastID, err := lastEventID(c)
	if err != nil {
		return err
	}
	return h.stream(c, lastID, h.cfg.Keyspace.Stream(q))
}

// keyspaceQuery validates and normalises the query, so equal streams share
// one topic whatever the parameter order or duplicates.
func (h *handler) keyspaceQuery(c *fiber.Ctx) (streams.KeyspaceQuery, error) {
	q := streams.KeyspaceQuery{DB: h.cfg.DefaultDB, Pattern: strings.Clone(c.Query("pattern", "*"))}
	if c.Context().QueryArgs().Has("pattern") && c.Query("pattern") == "" {
		return q, invalid("pattern is empty")
	}
	if len(q.Pattern) > maxPatternLength {
		return q, invalid("pattern is longer than " + strconv.Itoa(maxPatternLength) + " bytes")
	}
	if err := plainText("pattern", q.Pattern); err != nil {
		return q, err
	}
	if db := c.Query("db"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || n >= maxDB {
			return q, invalid("db must be a database number")
		}
		q.DB = n
	}
	if ev := c.Query("events"); ev != "" {
		for _, name := range strings.Split(ev, ",") {
			name = strings.TrimSpace(name)
			if !eventName.MatchString(name) {
				return q, invalid("events: " + strconv.Quote(name) +
					" is not an event name (lower-case letters, digits, _ and -)")
			}
			q.Events = append(q.Events, strings.Clone(name))
		}
		slices.Sort(q.Events)
		q.Events = slices.Compact(q.Events)
	}
	if v := c.Query("values"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return q, invalid("values must be true or false")
		}
		if b && q.DB != h.cfg.DefaultDB {
			return q, invalid("values=true reads the database of the Redis URL (" +
				strconv.Itoa(h.cfg.DefaultDB) + ") only")
		}
		q.Values = b
	}
	if !h.cfg.Expose.AllowsPattern(q.Pattern) {
		return q, forbidden("pattern " + strconv.Quote(q.Pattern) + " reaches keys outside the exposed prefixes")
	}
	return q, nil
}
