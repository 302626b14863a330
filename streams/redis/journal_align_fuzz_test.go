package redis

import "testing"

// FuzzAlign checks the safety of a takeover: whatever the messages, when the
// journal and the record truly overlap by enough to prove a placement,
// align finds that placement or refuses, never another one.
func FuzzAlign(f *testing.F) {
	f.Add([]byte("abcdefghijklmnopqrstuvwxyz0123456789abcdefghij"), uint8(0), uint8(30), uint8(10), uint8(46), false)
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), uint8(0), uint8(20), uint8(5), uint8(40), true)
	f.Fuzz(func(t *testing.T, data []byte, a, b, c, d uint8, whole bool) {
		o := make([]seen, len(data))
		for i, x := range data {
			o[i] = seen{"k", string(rune('a' + x%4))} // a small alphabet: many repeats
		}
		lo, hi := int(a), int(b)
		rlo, rhi := int(c), int(d)
		if lo > hi || hi > len(o) || rlo > rhi || rhi > len(o) {
			return
		}
		tail, record := o[lo:hi], o[rlo:rhi]
		p, ok := align(tail, record, whole)
		if !ok {
			return
		}
		if len(tail) == 0 {
			if p != -1 {
				t.Fatalf("empty journal placed at %d", p)
			}
			return
		}
		// The journal's last message is o[hi-1], at hi-1-rlo in the record
		// when the record holds it; the overlap is o[max(lo, rlo):hi].
		overlap := hi - max(lo, rlo)
		need := minProof
		if whole && len(tail) < need {
			need = len(tail)
		}
		truth := hi - 1 - rlo
		if rlo <= hi-1 && hi-1 < rhi && overlap >= need && p != truth {
			t.Fatalf("placed at %d, truly at %d (overlap %d)", p, truth, overlap)
		}
	})
}
