package handlers

import (
	"slices"
	"strconv"
	"strings"

	"github.com/keyflux/keyflux/handlers/auth"
)

// Expose lists the key prefixes clients may watch; empty means every key.
type Expose []string

// ParseExpose reads a comma-separated list of prefixes.
func ParseExpose(s string) Expose {
	var e Expose
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			e = append(e, p)
		}
	}
	return e
}

// AllowsPattern reports whether every key the Redis glob can match lies
// under an exposed prefix: the glob's literal start (up to its first special
// character) must begin with one.
func (e Expose) AllowsPattern(pattern string) bool {
	if len(e) == 0 {
		return true
	}
	literal := pattern
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		literal = pattern[:i]
	}
	return e.allows(literal)
}

// AllowsKey reports whether key lies under an exposed prefix.
func (e Expose) AllowsKey(key string) bool {
	return len(e) == 0 || e.allows(key)
}

func (e Expose) allows(s string) bool {
	for _, p := range e {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// scopeDB says whether who may use database db (403 otherwise); checkDB
// has said whether anyone may.
func (h *handler) scopeDB(who *auth.Identity, db int) error {
	if !who.Scopes.AllowsDB(db, h.cfg.DefaultDB) {
		return forbidden("db " + strconv.Itoa(db) + " is outside your scopes")
	}
	return nil
}

// checkDB says whether clients may use database db: 400 for one Redis does
// not have, checked first, so that the answer does not depend on the
// rules; then 403 unless --expose-db lists it (by default only the Redis
// URL's database is listed).
func (h *handler) checkDB(db int) error {
	if n := h.cfg.Databases; n == 1 && db > 0 {
		// A Redis Cluster has database 0 only.
		return invalid("db " + strconv.Itoa(db) + " does not exist: Redis has database 0 only (a Redis Cluster has one database)")
	} else if n > 0 && db >= n {
		return invalid("db " + strconv.Itoa(db) + " does not exist: Redis has databases 0 to " + strconv.Itoa(n-1))
	}
	exposed := h.cfg.ExposeDB
	if exposed == nil {
		exposed = []int{h.cfg.DefaultDB}
	}
	if !slices.Contains(exposed, db) {
		return forbidden("db " + strconv.Itoa(db) + " is not exposed (--expose-db)")
	}
	return nil
}
