package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Scopes are what an identity may use. Each list holds selectors: an exact
// name, or a literal prefix followed by one '*' ("user:42:*"); "*" alone is
// everything.
type Scopes struct {
	// Keys governs keyspace patterns, key watches, values and /api/keys.
	Keys Selectors `json:"keys"`
	// Channels governs the pub/sub relay.
	Channels Selectors `json:"channels"`
	// Streams governs the Redis Stream (log) endpoints.
	Streams Selectors `json:"streams"`
	// Publish governs POST /api/channels and /api/log.
	Publish Selectors `json:"publish"`
	// DB lists the databases; empty: the Redis URL's database only.
	DB []int `json:"db,omitempty"`
	// AnyDB allows every database (--expose-db still applies).
	AnyDB bool `json:"-"`
}

// AllowsDB reports whether database db is in scope; defaultDB is the Redis
// URL's.
func (s Scopes) AllowsDB(db, defaultDB int) bool {
	if s.AnyDB {
		return true
	}
	if len(s.DB) == 0 {
		return db == defaultDB
	}
	return slices.Contains(s.DB, db)
}

// Selectors are names and prefixes; see Scopes.
type Selectors []string

// All selects every name.
var All = Selectors{"*"}

// maxSelectors and maxSelectorLength bound what one token may carry.
const (
	maxSelectors      = 256
	maxSelectorLength = 1024
)

// ParseSelectors checks a list of selectors: each an exact name or a
// prefix followed by one '*', which must end it.
func ParseSelectors(what string, list []string) (Selectors, error) {
	if len(list) > maxSelectors {
		return nil, fmt.Errorf("%s: more than %d entries", what, maxSelectors)
	}
	for _, s := range list {
		if s == "" || len(s) > maxSelectorLength {
			return nil, fmt.Errorf("%s: an entry is empty or longer than %d bytes", what, maxSelectorLength)
		}
		if i := strings.IndexByte(s, '*'); i >= 0 && i != len(s)-1 {
			return nil, fmt.Errorf("%s: %q: '*' may only end an entry", what, s)
		}
	}
	return Selectors(list), nil
}

// AllowsName reports whether the exact name is selected.
func (s Selectors) AllowsName(name string) bool {
	for _, sel := range s {
		if prefix, ok := strings.CutSuffix(sel, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if sel == name {
			return true
		}
	}
	return false
}

// AllowsGlob reports whether every name the Redis glob can match is
// selected, provably: the glob's literal start, up to its first special
// character (* ? [ or \), must lie inside a prefix selector; a glob with no
// special character is a name. "user:42*" is not inside "user:42:*" (it
// matches "user:420"), and neither is "user:4[2]:*", which a cleverer test
// could accept: refusing what cannot be proven is the safe side.
func (s Selectors) AllowsGlob(glob string) bool {
	i := strings.IndexAny(glob, `*?[\`)
	if i < 0 {
		return s.AllowsName(glob)
	}
	literal := glob[:i]
	for _, sel := range s {
		if prefix, ok := strings.CutSuffix(sel, "*"); ok && strings.HasPrefix(literal, prefix) {
			return true
		}
	}
	return false
}
