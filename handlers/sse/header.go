package sse

import (
	"errors"
	"strings"
)

// ErrBadHeader is a Stream.Header that is not a list of well-formed header
// lines: written as it is, it could end the head early or smuggle a body.
var ErrBadHeader = errors.New("sse: malformed extra response header")

// maxHeader bounds Stream.Header: a few CORS lines need far less.
const maxHeader = 4 << 10

// checkHeader accepts "" or lines "Name: value\r\n", a name of token bytes
// and a value without control bytes other than tab.
func checkHeader(h string) error {
	if len(h) > maxHeader {
		return ErrBadHeader
	}
	for h != "" {
		line, rest, ok := strings.Cut(h, "\r\n")
		if !ok {
			return ErrBadHeader
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return ErrBadHeader
		}
		for i := 0; i < len(name); i++ {
			if !isToken(name[i]) {
				return ErrBadHeader
			}
		}
		for i := 0; i < len(value); i++ {
			if b := value[i]; (b < 0x20 && b != '\t') || b == 0x7f {
				return ErrBadHeader
			}
		}
		h = rest
	}
	return nil
}

// isToken reports whether b may be in a header name (RFC 9110's tchar).
func isToken(b byte) bool {
	return b < 0x80 && (b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0)
}
