package streams

import (
	"testing"
)

func frames(fs []*Frame) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

func TestRingResume(t *testing.T) {
	r := newRing(3, 10)
	for _, s := range []uint64{12, 15, 16, 20} { // sparse: ids are process-wide
		r.push(s, &Frame{ID: string(rune('a' + s - 10))})
	}
	// 12 was evicted; base is now 12, so a client at 12 missed 15, 16, 20.
	cases := []struct {
		seq  uint64
		want []string
		ok   bool
	}{
		{12, []string{"f", "g", "k"}, true},
		{15, []string{"g", "k"}, true},
		{20, []string{}, true},
		{10, nil, false},                    // before the ring's base: missed frames are gone
		{13, []string{"f", "g", "k"}, true}, // another topic's position: what came after it
		{21, []string{}, true},              // later than all: nothing missed (the hub checks it was issued)

	}
	for _, c := range cases {
		got, _, ok := r.after(c.seq)
		if ok != c.ok || (ok && len(got) != len(c.want)) {
			t.Fatalf("after(%d) = %v, %v; want %v, %v", c.seq, frames(got), ok, c.want, c.ok)
		}
		for i := range c.want {
			if got[i].ID != c.want[i] {
				t.Fatalf("after(%d) = %v; want %v", c.seq, frames(got), c.want)
			}
		}
	}
	if r.head() != 20 {
		t.Fatalf("head %d", r.head())
	}
}

func TestRingEmpty(t *testing.T) {
	r := newRing(4, 7)
	if got, _, ok := r.after(7); !ok || len(got) != 0 {
		t.Fatalf("resume at base of empty ring: %v %v", got, ok)
	}
	if r.head() != 7 {
		t.Fatalf("head %d", r.head())
	}
}

func TestIDs(t *testing.T) {
	g := newIDs()
	n, id := g.next()
	if got, ok := g.parse(id); !ok || got != n {
		t.Fatalf("parse(%q) = %d %v", id, got, ok)
	}
	for _, bad := range []string{"", "x", "other-1", g.epoch + "-", g.epoch + "-x", "-1"} {
		if _, ok := g.parse(bad); ok {
			t.Fatalf("parse(%q) accepted", bad)
		}
	}
	if _, ok := newIDs().parse(id); ok && newIDs().epoch != g.epoch {
		t.Fatal("another process's id accepted")
	}
}
