package auth

import (
	"testing"
	"unicode/utf8"

	"github.com/keyflux/keyflux/streams/testkit"
)

// FuzzJavaString: hostile bytes from Redis never panic the decoders, and
// whatever it accepts is valid UTF-8 that encodes back to the same bytes
// (so nothing is accepted loosely).
func FuzzJavaString(f *testing.F) {
	for _, s := range []string{"alice", "", "a\x00b", "😀", "日本"} {
		f.Add(testkit.JavaString(s))
	}
	f.Add([]byte("\xac\xed\x00\x05\x7c\xff\xff\xff\xff\xff\xff\xff\xffabc"))
	f.Add([]byte("\xac\xed\x00\x05\x74\x00\x03\xed\xa0\xbd"))
	f.Add(testkit.JavaLong(7))
	f.Add(testkit.JavaInteger(-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		springNumber(b) // never panics either
		s, err := javaString(b)
		if err != nil {
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("accepted invalid UTF-8 %q", s)
		}
		if len(b) <= 5+2+0xFFFF && b[4] == javaTCString && string(testkit.JavaString(s)) != string(b) {
			t.Fatalf("%x decoded to %q, which encodes differently", b, s)
		}
	})
}
