package redis

import "strings"

// Match reports whether Redis would deliver a message on channel to a
// PSUBSCRIBE of pattern. It is a faithful port of stringmatchlen (case
// sensitive) from the util.c of Redis 7.0.15, with the CVE-2022-36021 early
// exit and the CVE-2024-31228 nesting limit that Debian's build carries (it
// only matters past 1000 stars, more than a 1024-byte client pattern holds):
// edge cases such as an unterminated "[", a reversed range, a trailing
// backslash, a lone "*" against the empty string or bytes above 0x7f in a
// range (C's char is signed) answer as Redis does. TestMatchAgreesWithRedis
// checks it against a real redis-server.
func Match(pattern, channel string) bool {
	skip := false
	return match(pattern, channel, &skip, 0)
}

// at is p[i], or the NUL that terminates every Redis string past its end.
func at(p string, i int) byte {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// match mirrors stringmatchlen_impl: p and s play pattern and string, and
// slicing them plays the pointer arithmetic.
func match(p, s string, skipLonger *bool, nesting int) bool {
	if nesting > 1000 { // Redis's protection against abusive patterns
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && at(p, 1) == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if match(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			// Nothing after the star matches anywhere in the rest: no
			// longer match of an earlier star can help either.
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			matched := false
			// Redis steps back one byte when the class is unterminated, so
			// that the step after the switch lands on the end.
			back := false
			for {
				if len(p) >= 2 && p[0] == '\\' {
					p = p[1:]
					if p[0] == s[0] {
						matched = true
					}
				} else if len(p) == 0 {
					back = true
					break
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					// C's char is signed: bytes above 0x7f sort below NUL.
					start, end, c := int8(p[0]), int8(p[2]), int8(s[0])
					if start > end {
						start, end = end, start
					}
					p = p[2:]
					if c >= start && c <= end {
						matched = true
					}
				} else if p[0] == s[0] {
					matched = true
				}
				p = p[1:]
			}
			if not {
				matched = !matched
			}
			if !matched {
				return false
			}
			s = s[1:]
			if back { // the pattern is used up: only an empty rest matches
				return len(s) == 0
			}
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			p = strings.TrimLeft(p, "*")
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// literalPrefix is the start of pattern up to its first special character:
// every channel the pattern matches starts with it.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// covers reports whether cover provably matches every channel name matches:
// cover is "<literal>*" and name's literal prefix starts with that literal.
// (Redis compares literal bytes one by one and a final "*" takes any rest;
// only the empty pattern matches the empty channel, which "*" does not.)
func covers(cover, name string) bool {
	lit, ok := strings.CutSuffix(cover, "*")
	return ok && name != "" && literalPrefix(lit) == lit && strings.HasPrefix(literalPrefix(name), lit)
}
