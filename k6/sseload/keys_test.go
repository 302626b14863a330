package main

import (
	"strings"
	"testing"
)

// TestKeyNamesRoundTrip checks that every key a run writes maps back to its
// own seq, padded to the asked size or not, and that near-misses (someone
// else's keys under the same prefix) do not.
func TestKeyNamesRoundTrip(t *testing.T) {
	const events = 1234
	for _, size := range []int{0, minKeySize("load:", events), 1000} {
		k := newKeyNames("load:", size)
		for seq := range events {
			key := k.key(seq)
			if size > 0 && len(key) != size {
				t.Fatalf("keysize %d: key(%d) is %d bytes", size, seq, len(key))
			}
			if got, ok := k.seq(key, events); !ok || got != seq {
				t.Fatalf("keysize %d: seq(key(%d)) = %d, %v", size, seq, got, ok)
			}
		}
		for _, foreign := range []string{"load:", "load:x", "other:1", "load:-1", k.key(events), "load:" + strings.Repeat("0", 2000) + "1"} {
			if seq, ok := k.seq(foreign, events); ok {
				t.Errorf("keysize %d: seq(%q) = %d, want not ours", size, foreign, seq)
			}
		}
	}
	if k := newKeyNames("load:", 0); k.key(7) != "load:7" {
		t.Errorf("unpadded key(7) = %q", k.key(7))
	}
	if _, ok := newKeyNames("load:", 0).seq("load:007", events); ok {
		t.Error("unpadded seq accepted a zero-padded key")
	}
}
