package auth

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JDK serialization of a java.lang.String, as Spring's default
// JdkSerializationRedisSerializer writes a session attribute holding one:
// the stream header, then TC_STRING with a 2-byte length or TC_LONGSTRING
// with an 8-byte length, then that many bytes of modified UTF-8.
const (
	javaStreamMagic   = 0xACED0005
	javaTCString      = 0x74
	javaTCLongString  = 0x7C
	javaStringMaxSize = 1 << 17 // bytes; a principal is refused far below
)

var errNotJavaString = errors.New("not a JDK-serialized java.lang.String")

// isJavaSerialized reports whether b starts a JDK serialization stream.
func isJavaSerialized(b []byte) bool {
	return len(b) >= 4 && binary.BigEndian.Uint32(b) == javaStreamMagic
}

// javaString decodes a JDK-serialized java.lang.String and nothing else:
// no other object, no trailing bytes, no declared length beyond what is
// there (so a huge declared length allocates nothing), no malformed or
// lone-surrogate modified UTF-8.
func javaString(b []byte) (string, error) {
	if !isJavaSerialized(b) || len(b) < 5 {
		return "", errNotJavaString
	}
	rest := b[5:]
	var n uint64
	switch b[4] {
	case javaTCString:
		if len(rest) < 2 {
			return "", errNotJavaString
		}
		n, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
	case javaTCLongString:
		if len(rest) < 8 {
			return "", errNotJavaString
		}
		n, rest = binary.BigEndian.Uint64(rest), rest[8:]
	default:
		return "", errNotJavaString
	}
	if n != uint64(len(rest)) || n > javaStringMaxSize {
		return "", errNotJavaString
	}
	return modifiedUTF8(rest)
}

// modifiedUTF8 decodes Java's modified UTF-8 (DataInput.readUTF): NUL as
// C0 80, characters outside the BMP as two 3-byte surrogates. Overlong
// forms, which Java never writes, are refused: one spelling per string.
func modifiedUTF8(b []byte) (string, error) {
	var sb strings.Builder
	sb.Grow(len(b))
	unit := func(i int) (rune, int, bool) { // one UTF-16 code unit
		c := b[i]
		switch {
		case c >= 0x01 && c < 0x80:
			return rune(c), 1, true
		case c&0xE0 == 0xC0 && i+1 < len(b) && b[i+1]&0xC0 == 0x80:
			r := rune(c&0x1F)<<6 | rune(b[i+1]&0x3F)
			return r, 2, r == 0 || r >= 0x80
		case c&0xF0 == 0xE0 && i+2 < len(b) && b[i+1]&0xC0 == 0x80 && b[i+2]&0xC0 == 0x80:
			r := rune(c&0x0F)<<12 | rune(b[i+1]&0x3F)<<6 | rune(b[i+2]&0x3F)
			return r, 3, r >= 0x800
		}
		return 0, 0, false
	}
	for i := 0; i < len(b); {
		r, size, ok := unit(i)
		if !ok {
			return "", errNotJavaString
		}
		i += size
		if r >= 0xD800 && r < 0xDC00 { // high surrogate: a low one must follow
			if i >= len(b) {
				return "", errNotJavaString
			}
			lo, size, ok := unit(i)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return "", errNotJavaString
			}
			i += size
			r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
		} else if r >= 0xDC00 && r <= 0xDFFF {
			return "", errNotJavaString
		}
		sb.WriteRune(r)
	}
	if !utf8.ValidString(sb.String()) {
		return "", errNotJavaString
	}
	return sb.String(), nil
}

// JDK serializations of java.lang.Long and java.lang.Integer, as Spring
// stores lastAccessedTime and maxInactiveInterval: a fixed class
// description (names, serialVersionUIDs, the one field "value", the
// superclass java.lang.Number), then the big-endian value.
var (
	javaLongPrefix    = javaNumberPrefix("java.lang.Long", "\x3b\x8b\xe4\x90\xcc\x8f\x23\xdf", 'J')
	javaIntegerPrefix = javaNumberPrefix("java.lang.Integer", "\x12\xe2\xa0\xa4\xf7\x81\x87\x38", 'I')
)

func javaNumberPrefix(class, uid string, typ byte) string {
	utf := func(s string) string { return string([]byte{0, byte(len(s))}) + s }
	return "\xac\xed\x00\x05\x73\x72" + utf(class) + uid + "\x02\x00\x01" + string(typ) + utf("value") +
		"\x78\x72" + utf("java.lang.Number") + "\x86\xac\x95\x1d\x0b\x94\xe0\x8b" + "\x02\x00\x00\x78\x70"
}

// springNumber reads a number Spring stored: a JDK-serialized Long or
// Integer, or JSON / plain text (the Jackson and String serializers).
func springNumber(b []byte) (int64, bool) {
	s := string(b)
	if rest, ok := strings.CutPrefix(s, javaLongPrefix); ok && len(rest) == 8 {
		return int64(binary.BigEndian.Uint64([]byte(rest))), true
	}
	if rest, ok := strings.CutPrefix(s, javaIntegerPrefix); ok && len(rest) == 4 {
		return int64(int32(binary.BigEndian.Uint32([]byte(rest)))), true
	}
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
