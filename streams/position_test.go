package streams

import (
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// now is a realistic Redis millisecond clock (December 2026).
const now = uint64(1796300000000)

// positionGrammar is the ABNF of position.go as a regexp, to check that
// Encode writes nothing else.
var positionGrammar = regexp.MustCompile(
	`^v1\.(0|[1-9a-z][0-9a-z]{0,12})(\.(0|[1-9a-z][0-9a-z]{0,12})(_[1-9a-z][0-9a-z]{0,12})?){1,32}$`)

func spread(n int, step uint64, seq func(i int) uint64) Position {
	p := make(Position, n)
	for i := range p {
		p[i] = EntryID{MS: now + uint64(i)*step, Seq: seq(i)}
	}
	return p
}

func zero(int) uint64 { return 0 }

func TestPositionRoundTrip(t *testing.T) {
	hour, day := uint64(time.Hour.Milliseconds()), uint64(24*time.Hour.Milliseconds())
	cases := map[string]Position{
		"one":                {{MS: now, Seq: 0}},
		"one with seq":       {{MS: now, Seq: 7}},
		"one at zero":        {{}},
		"one max":            {{MS: math.MaxUint64, Seq: math.MaxUint64}},
		"two same ms":        {{MS: now, Seq: 3}, {MS: now, Seq: 1}},
		"two an hour apart":  {{MS: now + hour}, {MS: now, Seq: 2}},
		"two days apart":     {{MS: now}, {MS: now + 3*day, Seq: 1}},
		"two extremes":       {{MS: math.MaxUint64}, {MS: 0, Seq: math.MaxUint64}},
		"max seq":            {{MS: now, Seq: math.MaxUint64}, {MS: now + 1, Seq: math.MaxUint64}},
		"eight same ms":      spread(8, 0, func(i int) uint64 { return uint64(i) }),
		"eight hours apart":  spread(8, hour, func(i int) uint64 { return uint64(i % 2) }),
		"eight descending":   reversed(spread(8, hour, zero)),
		"32 same ms":         spread(32, 0, func(i int) uint64 { return uint64(i % 3) }),
		"32 within a second": spread(32, 30, zero),
		"near max":           {{MS: math.MaxUint64 - 1}, {MS: math.MaxUint64, Seq: 1}},
	}
	for name, p := range cases {
		s, err := p.Encode()
		if err != nil {
			t.Fatalf("%s: Encode(%v): %v", name, p, err)
		}
		if !positionGrammar.MatchString(s) || len(s) > PositionMaxLen {
			t.Fatalf("%s: %q is outside the grammar or too long", name, s)
		}
		got, err := DecodePosition(s)
		if err != nil || !slices.Equal(got, p) {
			t.Fatalf("%s: DecodePosition(%q) = %v, %v; want %v", name, s, got, err, p)
		}
	}
}

// Journal i stays at index i: swapping two journals changes the encoding.
func TestPositionKeepsOrder(t *testing.T) {
	p := Position{{MS: now}, {MS: now + 5, Seq: 1}, {MS: now + 9}}
	q := Position{p[2], p[1], p[0]}
	a, _ := p.Encode()
	b, _ := q.Encode()
	if a == b {
		t.Fatalf("%v and %v both encode to %q", p, q, a)
	}
	for s, want := range map[string]Position{a: p, b: q} {
		if got, err := DecodePosition(s); err != nil || !slices.Equal(got, want) {
			t.Fatalf("DecodePosition(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

// The worst case for 32 journals whose ids lie within a window: one at the
// base, 31 at the window's far end (the most digits), all sequences zero.
func TestPositionLength(t *testing.T) {
	worst := func(window uint64, seq uint64) (int, error) {
		p := spread(32, 0, func(int) uint64 { return seq })
		for i := 1; i < len(p); i++ {
			p[i].MS += window
		}
		s, err := p.Encode()
		if err == nil {
			return len(s), nil
		}
		// Measure it anyway, past the limit, to report the figure.
		b := "v1." + strings.Repeat("x", 8) + ".0" + strings.Repeat("."+strconv.FormatUint(window, 36), 31)
		return len(b), err
	}
	for _, c := range []struct {
		name   string
		window uint64
		want   int
	}{
		{"same ms", 0, 75},
		{"35 ms", 35, 75},
		{"1.295 s", 1295, 106},
		{"46.6 s", 46655, 137},
		{"one hour", uint64(time.Hour.Milliseconds()), 199},
		{"one day", uint64(24 * time.Hour.Milliseconds()), 230},
	} {
		n, err := worst(c.window, 0)
		t.Logf("32 journals within %s: %d bytes", c.name, n)
		if n != c.want {
			t.Errorf("32 journals within %s: %d bytes, want %d", c.name, n, c.want)
		}
		if (n > PositionMaxLen) != errors.Is(err, ErrPositionTooLong) {
			t.Errorf("32 journals within %s: %d bytes, err %v", c.name, n, err)
		}
	}
	// A full sequence costs 14 bytes: 7 journals of them still fit, 8 not.
	for n, fits := range map[int]bool{7: true, 8: false} {
		p := spread(n, 0, func(int) uint64 { return math.MaxUint64 })
		s, err := p.Encode()
		t.Logf("%d journals with full sequences: %d bytes, %v", n, len(s), err)
		if (err == nil) != fits {
			t.Errorf("%d journals with full sequences: %q, %v", n, s, err)
		}
	}
}

func TestPositionEncodeRefuses(t *testing.T) {
	for _, c := range []struct {
		p    Position
		want error
	}{
		{nil, ErrPositionEmpty},
		{Position{}, ErrPositionEmpty},
		{spread(33, 0, zero), ErrPositionTooMany},
		{spread(32, uint64(time.Hour.Milliseconds()), zero), ErrPositionTooLong},
		{spread(10, 0, func(int) uint64 { return math.MaxUint64 }), ErrPositionTooLong},
	} {
		if s, err := c.p.Encode(); !errors.Is(err, c.want) || s != "" {
			t.Errorf("Encode(%d journals) = %q, %v; want %v", len(c.p), s, err, c.want)
		}
	}
}

func TestDecodePositionRefuses(t *testing.T) {
	max := "3w5e11264sgsf" // 2^64-1
	for _, c := range []struct {
		s    string
		want error
	}{
		{"", ErrPositionVersion},
		{"v2.0.0", ErrPositionVersion},
		{"V1.0.0", ErrPositionVersion},
		{"1700000000000-0", ErrPositionVersion}, // a plain entry id
		{"v1", ErrPositionVersion},
		{"v1.", ErrPositionSyntax},
		{"v1.5", ErrPositionEmpty},
		{"v1.5.", ErrPositionSyntax},                 // empty part
		{"v1..0", ErrPositionSyntax},                 // empty base
		{"v1.5.0.", ErrPositionSyntax},               // trailing dot
		{"v1.5.0..0", ErrPositionSyntax},             // empty part inside
		{"v1.05.0", ErrPositionSyntax},               // leading zero in the base
		{"v1.5.00", ErrPositionSyntax},               // leading zero in a part
		{"v1.5.01", ErrPositionSyntax},               // leading zero in a part
		{"v1.5.0_0", ErrPositionSyntax},              // zero sequence written out
		{"v1.5.0_01", ErrPositionSyntax},             // leading zero in a sequence
		{"v1.5.0_", ErrPositionSyntax},               // empty sequence
		{"v1.5._1", ErrPositionSyntax},               // sequence without ms
		{"v1.5.0_1_2", ErrPositionSyntax},            // two sequences
		{"v1.5.1", ErrPositionSyntax},                // base below every journal
		{"v1.5.1.2", ErrPositionSyntax},              // base below every journal
		{"v1.A.0", ErrPositionSyntax},                // upper case
		{"v1.5.0_A", ErrPositionSyntax},              // upper case
		{"v1.+5.0", ErrPositionSyntax},               // sign
		{"v1.5.-1", ErrPositionSyntax},               // sign
		{"v1.5.0 ", ErrPositionSyntax},               // trailing junk
		{"v1.5.0~", ErrPositionSyntax},               // trailing junk
		{"v1.5.0\n", ErrPositionSyntax},              // trailing junk
		{" v1.5.0", ErrPositionVersion},              // leading junk
		{"v1.5.0-1", ErrPositionSyntax},              // entry-id style sequence
		{"v1.5,0", ErrPositionSyntax},                // wrong separator
		{"v1.3w5e11264sgsg.0", ErrPositionOverflow},  // 2^64
		{"v1.10000000000000.0", ErrPositionOverflow}, // 14 digits
		{"v1.0.0_3w5e11264sgsg", ErrPositionOverflow},
		{"v1.1.0." + max, ErrPositionOverflow}, // base + delta past 2^64-1
		{"v1." + max + ".0.1", ErrPositionOverflow},
		{"v1.0" + strings.Repeat(".0", 33), ErrPositionTooMany},
		{"v1.0" + strings.Repeat(".0", 63), ErrPositionTooLong},
		{"v1.0" + strings.Repeat("_", 200), ErrPositionTooLong},
	} {
		if p, err := DecodePosition(c.s); !errors.Is(err, c.want) || p != nil {
			t.Errorf("DecodePosition(%q) = %v, %v; want %v", c.s, p, err, c.want)
		}
	}
	// The limits themselves are accepted.
	for _, s := range []string{
		"v1.0" + strings.Repeat(".0", 32),
		"v1." + max + ".0_" + max,
		"v1.0.0." + max,
	} {
		if _, err := DecodePosition(s); err != nil {
			t.Errorf("DecodePosition(%q): %v", s, err)
		}
	}
}

func TestPositionAdvance(t *testing.T) {
	p := Position{{MS: now}, {MS: now + 1}}
	q := p.Advance(1, EntryID{MS: now + 2, Seq: 4})
	if !slices.Equal(p, Position{{MS: now}, {MS: now + 1}}) {
		t.Fatalf("Advance changed its receiver: %v", p)
	}
	if !slices.Equal(q, Position{{MS: now}, {MS: now + 2, Seq: 4}}) {
		t.Fatalf("Advance = %v", q)
	}
}

func reversed(p Position) Position { slices.Reverse(p); return p }
