package auth

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

func TestJavaStringDecodes(t *testing.T) {
	for _, s := range []string{"alice", "", "héllo wörld", "a\x00b", "😀 outside the BMP", "日本語",
		strings.Repeat("x", 0xFFFF), strings.Repeat("é", 40000)} { // the last is a TC_LONGSTRING
		got, err := javaString(testkit.JavaString(s))
		if err != nil || got != s {
			t.Errorf("%.20q: got %.20q, %v", s, got, err)
		}
	}
	// Bytes as Java writes "alice": AC ED 00 05 74 00 05 'a' 'l' 'i' 'c' 'e'.
	if got, err := javaString([]byte("\xac\xed\x00\x05\x74\x00\x05alice")); err != nil || got != "alice" {
		t.Fatalf("got %q, %v", got, err)
	}
	if b := testkit.JavaString(strings.Repeat("é", 40000)); b[4] != javaTCLongString {
		t.Fatalf("a string of 80000 bytes was written with tag %#x", b[4])
	}
}

func TestJavaStringRefuses(t *testing.T) {
	alice := testkit.JavaString("alice")
	long := func(n uint64, body string) []byte {
		b := []byte{0xAC, 0xED, 0x00, 0x05, javaTCLongString}
		return append(binary.BigEndian.AppendUint64(b, n), body...)
	}
	for name, b := range map[string][]byte{
		"empty":                     nil,
		"a Long":                    testkit.JavaLong(42),
		"an Integer":                testkit.JavaInteger(42),
		"JSON":                      []byte(`"alice"`),
		"wrong magic":               append([]byte{0xAC, 0xED, 0x00, 0x06}, alice[4:]...),
		"header only":               alice[:4],
		"no length":                 alice[:6],
		"truncated":                 alice[:len(alice)-1],
		"trailing bytes":            append(bytes.Clone(alice), 'x'),
		"length too long":           []byte("\xac\xed\x00\x05\x74\x00\x06alice"),
		"huge long length":          long(1<<62, "alice"),
		"max uint64 length":         long(^uint64(0), "alice"),
		"long string over the cap":  long(javaStringMaxSize+1, strings.Repeat("a", javaStringMaxSize+1)),
		"overlong A":                []byte("\xac\xed\x00\x05\x74\x00\x02\xc1\x81"),
		"overlong 3-byte":           []byte("\xac\xed\x00\x05\x74\x00\x03\xe0\x81\x81"),
		"raw NUL":                   []byte("\xac\xed\x00\x05\x74\x00\x03a\x00b"),
		"bad continuation":          []byte("\xac\xed\x00\x05\x74\x00\x02\xc3\x28"),
		"4-byte UTF-8":              []byte("\xac\xed\x00\x05\x74\x00\x04\xf0\x9f\x98\x80"),
		"lone high surrogate":       []byte("\xac\xed\x00\x05\x74\x00\x03\xed\xa0\xbd"),
		"lone low surrogate":        []byte("\xac\xed\x00\x05\x74\x00\x03\xed\xb8\x80"),
		"high then non-surrogate":   []byte("\xac\xed\x00\x05\x74\x00\x04\xed\xa0\xbdx"),
		"TC_REFERENCE, not string":  []byte("\xac\xed\x00\x05\x71\x00\x7e\x00\x00"),
		"TC_OBJECT of a String sub": []byte("\xac\xed\x00\x05\x73\x72\x00\x10java.lang.String"),
	} {
		if s, err := javaString(b); err == nil {
			t.Errorf("%s: decoded %q", name, s)
		}
	}
}

func TestJavaStringHugeDeclaredLengthAllocatesNothing(t *testing.T) {
	b := []byte("\xac\xed\x00\x05\x7c\x7f\xff\xff\xff\xff\xff\xff\xffabc")
	if n := testing.AllocsPerRun(100, func() { _, _ = javaString(b) }); n > 1 {
		t.Fatalf("%v allocations for a refused huge length", n)
	}
}

func TestSpringNumber(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want int64
		ok   bool
	}{
		{testkit.JavaLong(1404360000000), 1404360000000, true},
		{testkit.JavaLong(-1), -1, true},
		{testkit.JavaInteger(1800), 1800, true},
		{testkit.JavaInteger(-1), -1, true},
		{[]byte("1800"), 1800, true}, // Jackson, or the String serializer
		{[]byte("-1"), -1, true},
		{testkit.JavaLong(1)[:len(testkit.JavaLong(1))-1], 0, false}, // truncated
		{append(testkit.JavaInteger(1), 0), 0, false},                // trailing byte
		{testkit.JavaString("1800"), 0, false},                       // a String is no number
		{[]byte("1e3"), 0, false},
		{[]byte("99999999999999999999999"), 0, false},
		{nil, 0, false},
	} {
		if got, ok := springNumber(c.in); ok != c.ok || got != c.want {
			t.Errorf("%x: got %d %v, want %d %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
