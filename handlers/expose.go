package handlers

import "strings"

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
