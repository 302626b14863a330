package main

import (
	"strconv"
	"strings"
)

// maxKeySize bounds -keysize well below go-sse's 64 KiB limit on one
// event, which the key (inside the event's JSON) must fit with room to spare.
const maxKeySize = 16 << 10

// keyNames names the keys a fanout run writes: <prefix><seq>, the seq
// zero-padded to width digits when width > 0. Padding exists for -keysize:
// a keyspace event carries the key, so a longer key is a bigger frame on
// every stream, which fills a stalled client's socket buffers and its
// server-side queue within a run of ordinary length.
type keyNames struct {
	prefix string
	width  int // digits of the seq, zero-padded; 0 = as many as it has
}

// newKeyNames gives keys of keySize bytes in all (0: unpadded).
func newKeyNames(prefix string, keySize int) keyNames {
	k := keyNames{prefix: prefix}
	if keySize > 0 {
		k.width = keySize - len(prefix)
	}
	return k
}

func (k keyNames) key(seq int) string {
	digits := strconv.Itoa(seq)
	if pad := k.width - len(digits); pad > 0 {
		digits = strings.Repeat("0", pad) + digits
	}
	return k.prefix + digits
}

// seq is the inverse of key; it accepts only seq < n, and only a key of
// the run's form, so a key someone else wrote is not taken for one of ours.
func (k keyNames) seq(key string, n int) (int, bool) {
	s, ok := strings.CutPrefix(key, k.prefix)
	if !ok || s == "" || (k.width > 0 && len(s) != k.width) || (k.width == 0 && len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	seq, err := strconv.Atoi(s)
	if err != nil || seq < 0 || seq >= n {
		return 0, false
	}
	return seq, true
}

// minKeySize is the shortest -keysize that fits prefix and the largest seq
// of a run of events keys.
func minKeySize(prefix string, events int) int {
	return len(prefix) + len(strconv.Itoa(max(events-1, 0)))
}
