package streams

import (
	"errors"
	"strconv"
	"strings"
)

// A Position is where a combined stream stands in each of its journals: one
// Redis Stream entry id per journal, in the fixed order of the stream's subs.
// It travels as one Last-Event-ID, so it is encoded compactly and strictly.
//
// Grammar of an encoded position (ABNF, RFC 5234; case-sensitive):
//
//	position = "v1." num 1*32( "." part ) ; num: the base, see below
//	part     = num [ "_" seq ]           ; one per journal, in the subs' order
//	num      = "0" / seq                 ; base 36
//	seq      = nz *12digit               ; base 36, at most 2^64-1, no leading zero
//	digit    = DIGIT / %x61-7A           ; 0-9 a-z
//	nz       = %x31-39 / %x61-7A         ; digit other than "0"
//
// The base is the smallest millisecond part among the journals; each part
// holds its journal's milliseconds minus the base, so journals written close
// in time take a digit or two each and no sign is needed. At least one part's
// num is "0" (the base is the minimum, not merely below it), and the "_"
// sequence is present only when not zero: each position has exactly one
// encoding, and Decode accepts only what Encode produces. Every character is
// safe in an SSE id line, a URL query and an HTTP header.
//
// Sizes, worst case for 32 journals with zero sequences (today's
// milliseconds take 8 digits; one journal sits at the base): 75 bytes within
// 35 ms, 106 within 1.295 s, 137 within 46.6 s, 199 within an hour, 230
// within a day. A full sequence adds 14 bytes: 7 journals with full
// sequences fit, 8 do not. Encode refuses what passes PositionMaxLen; the
// caller must then fall back (e.g. no resumable id for that event).
type Position []EntryID

const (
	// PositionMaxLen bounds an encoded position: longer ids are cut or
	// refused by some browsers and proxies.
	PositionMaxLen = 128
	// PositionMaxJournals is the most journals one position holds: the
	// combined stream's limit on subs.
	PositionMaxJournals = 32

	positionVersion   = "v1."
	positionMaxDigits = 13 // base-36 digits of 2^64-1, "3w5e11264sgsf"
)

var (
	ErrPositionEmpty    = errors.New("position: no journals")
	ErrPositionTooMany  = errors.New("position: more than 32 journals")
	ErrPositionTooLong  = errors.New("position: longer than 128 bytes")
	ErrPositionVersion  = errors.New("position: unknown version")
	ErrPositionSyntax   = errors.New("position: malformed")
	ErrPositionOverflow = errors.New("position: number out of range")
)

// Encode writes p in the grammar above; it fails when p is empty, holds more
// than PositionMaxJournals ids, or would take more than PositionMaxLen bytes.
func (p Position) Encode() (string, error) {
	switch {
	case len(p) == 0:
		return "", ErrPositionEmpty
	case len(p) > PositionMaxJournals:
		return "", ErrPositionTooMany
	}
	base := p[0].MS
	for _, id := range p[1:] {
		base = min(base, id.MS)
	}
	b := make([]byte, 0, PositionMaxLen)
	b = append(b, positionVersion...)
	b = strconv.AppendUint(b, base, 36)
	for _, id := range p {
		b = append(b, '.')
		b = strconv.AppendUint(b, id.MS-base, 36)
		if id.Seq != 0 {
			b = append(b, '_')
			b = strconv.AppendUint(b, id.Seq, 36)
		}
		if len(b) > PositionMaxLen {
			return "", ErrPositionTooLong
		}
	}
	return string(b), nil
}

// DecodePosition reads what Encode wrote and refuses anything else. The work
// is bounded: the length is checked before any parsing.
func DecodePosition(s string) (Position, error) {
	if len(s) > PositionMaxLen {
		return nil, ErrPositionTooLong
	}
	rest, ok := strings.CutPrefix(s, positionVersion)
	if !ok {
		return nil, ErrPositionVersion
	}
	num, rest, ok := strings.Cut(rest, ".")
	base, err := parseBase36(num)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ErrPositionEmpty
	}
	p := make(Position, 0, min(strings.Count(rest, ".")+1, PositionMaxJournals))
	atBase := false
	for part := range strings.SplitSeq(rest, ".") {
		if len(p) == PositionMaxJournals {
			return nil, ErrPositionTooMany
		}
		num, seq, hasSeq := strings.Cut(part, "_")
		delta, err := parseBase36(num)
		switch {
		case err != nil:
			return nil, err
		case delta > ^uint64(0)-base:
			return nil, ErrPositionOverflow
		}
		id := EntryID{MS: base + delta}
		atBase = atBase || delta == 0
		if hasSeq {
			if id.Seq, err = parseBase36(seq); err != nil {
				return nil, err
			}
			if id.Seq == 0 {
				return nil, ErrPositionSyntax // a zero sequence is left out
			}
		}
		p = append(p, id)
	}
	if !atBase {
		return nil, ErrPositionSyntax // a base below every journal: a second encoding
	}
	return p, nil
}

// parseBase36 reads a canonical lowercase base-36 number: strconv would also
// take upper case, signs and leading zeros, each a second encoding.
func parseBase36(s string) (uint64, error) {
	switch {
	case s == "":
		return 0, ErrPositionSyntax
	case len(s) > 1 && s[0] == '0':
		return 0, ErrPositionSyntax
	case len(s) > positionMaxDigits:
		return 0, ErrPositionOverflow
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		var d uint64
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'z':
			d = uint64(c-'a') + 10
		default:
			return 0, ErrPositionSyntax
		}
		if n > (^uint64(0)-d)/36 {
			return 0, ErrPositionOverflow
		}
		n = n*36 + d
	}
	return n, nil
}

// Advance returns a copy of p with journal i at id; p is left unchanged, so
// a position already handed out can be shared.
func (p Position) Advance(i int, id EntryID) Position {
	q := make(Position, len(p))
	copy(q, p)
	q[i] = id
	return q
}
