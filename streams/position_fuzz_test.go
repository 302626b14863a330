package streams

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzPosition checks both directions: any string either fails to decode or
// is exactly what Encode writes for the position it decodes to; any position
// (built from the bytes, ids within a window) either encodes within bounds
// and decodes back to itself, or is refused for a stated reason.
func FuzzPosition(f *testing.F) {
	f.Add("v1.0.0", uint64(now), uint64(0), []byte{})
	f.Add("v1.lwzpq1c0.0_1.2s.-1", uint64(now), uint64(3600000), []byte("0123456789abcdef0123456789abcdef"))
	f.Add("v1.3w5e11264sgsf.0_3w5e11264sgsf", ^uint64(0), ^uint64(0), []byte(strings.Repeat("\xff", 160)))
	f.Add("v1.5"+strings.Repeat(".0", 32), uint64(0), uint64(1295), []byte(strings.Repeat("\x01\x00", 300)))
	f.Add("v1.5.00", uint64(1), uint64(35), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, s string, base, window uint64, data []byte) {
		if p, err := DecodePosition(s); err == nil {
			if len(p) == 0 || len(p) > PositionMaxJournals {
				t.Fatalf("DecodePosition(%q) = %d journals", s, len(p))
			}
			if again, err := p.Encode(); err != nil || again != s {
				t.Fatalf("DecodePosition(%q) = %v, which encodes to %q, %v", s, p, again, err)
			}
		} else if p != nil {
			t.Fatalf("DecodePosition(%q) = %v with error %v", s, p, err)
		}

		// 12 bytes per journal: an offset within the window, a sequence
		// that is often zero or small, as in real streams.
		var p Position
		for ; len(data) >= 12 && len(p) <= PositionMaxJournals; data = data[12:] {
			off := binary.LittleEndian.Uint64(data)
			if window != ^uint64(0) {
				off %= window + 1
			}
			seq := uint64(binary.LittleEndian.Uint32(data[8:]))
			seq >>= seq % 33
			p = append(p, EntryID{MS: base + off, Seq: seq})
		}
		enc, err := p.Encode()
		switch {
		case err == nil:
			if len(enc) > PositionMaxLen || !positionGrammar.MatchString(enc) {
				t.Fatalf("Encode(%v) = %q", p, enc)
			}
			if got, err := DecodePosition(enc); err != nil || !slices.Equal(got, p) {
				t.Fatalf("DecodePosition(%q) = %v, %v; want %v", enc, got, err, p)
			}
		case len(p) == 0 && errors.Is(err, ErrPositionEmpty),
			len(p) > PositionMaxJournals && errors.Is(err, ErrPositionTooMany),
			len(p) <= PositionMaxJournals && errors.Is(err, ErrPositionTooLong):
		default:
			t.Fatalf("Encode(%d journals) = %v", len(p), err)
		}
	})
}
