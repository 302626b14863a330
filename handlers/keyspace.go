package handlers

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams"
)

const (
	maxPatternLength = 1024
	maxDB            = 1 << 16
)

var eventName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// keyspace is the source of GET /streams/keyspace?pattern=&events=&db=. It
// validates and normalises the query, so equal streams share one topic
// whatever the parameter order or duplicates.
func keyspace(_ context.Context, h *handler, who *auth.Identity, _ string, params url.Values) (request, error) {
	if err := only(params, "pattern", "events", "db", "values"); err != nil {
		return request{}, err
	}
	q := streams.KeyspaceQuery{DB: h.cfg.DefaultDB, Pattern: "*"}
	if p, ok := params["pattern"]; ok {
		if len(p) != 1 {
			return request{}, invalid("pattern is given more than once")
		}
		q.Pattern = p[0]
	}
	if q.Pattern == "" {
		return request{}, invalid("pattern is empty")
	}
	if len(q.Pattern) > maxPatternLength {
		return request{}, invalid("pattern is longer than " + strconv.Itoa(maxPatternLength) + " bytes")
	}
	if err := plainText("pattern", q.Pattern); err != nil {
		return request{}, err
	}
	if db, err := one(params, "db"); err != nil {
		return request{}, err
	} else if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || n >= maxDB {
			return request{}, invalid("db must be a database number")
		}
		q.DB = n
	}
	if ev, err := one(params, "events"); err != nil {
		return request{}, err
	} else if ev != "" {
		for _, name := range strings.Split(ev, ",") {
			name = strings.TrimSpace(name)
			if !eventName.MatchString(name) {
				return request{}, invalid("events: " + strconv.Quote(name) +
					" is not an event name (lower-case letters, digits, _ and -)")
			}
			q.Events = append(q.Events, name)
		}
		slices.Sort(q.Events)
		q.Events = slices.Compact(q.Events)
	}
	if v, err := one(params, "values"); err != nil {
		return request{}, err
	} else if v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return request{}, invalid("values must be true or false")
		}
		if b && q.DB != h.cfg.DefaultDB {
			return request{}, invalid("values=true reads the database of the Redis URL (" +
				strconv.Itoa(h.cfg.DefaultDB) + ") only")
		}
		q.Values = b
	}
	if err := h.checkDB(q.DB); err != nil {
		return request{}, err
	}
	if !h.cfg.Expose.AllowsPattern(q.Pattern) {
		return request{}, forbidden("pattern " + strconv.Quote(q.Pattern) + " reaches keys outside the exposed prefixes")
	}
	if err := h.scopeDB(who, q.DB); err != nil {
		return request{}, err
	}
	if !who.Scopes.Keys.AllowsGlob(q.Pattern) {
		return request{}, forbidden("pattern " + strconv.Quote(q.Pattern) + " may reach keys outside your scopes")
	}
	return single(h.cfg.Keyspace.Stream(q))
}
