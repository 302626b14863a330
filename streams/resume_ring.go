package streams

import "sort"

// ringResume is the resume strategy of ordinary streams: the hub numbers
// their events and keeps the last ReplaySize frames, and a client that
// returns with one of this process's ids gets what it missed from the
// ring, or a "reset" when the ring no longer reaches back that far.
type ringResume struct {
	ids  *ids
	ring *ring
}

func (r *ringResume) id(Event) (uint64, string) { return r.ids.next() }

func (r *ringResume) keep(seq uint64, f *Frame) { r.ring.push(seq, f) }

func (r *ringResume) ready(string) {}

func (r *ringResume) hold(*Subscription, *Frame) bool { return false }

func (r *ringResume) rejoin(_ *Subscription, at position) catchUp {
	if at.known {
		if frames, seqs, ok := r.ring.after(at.seq); ok {
			return catchUp{replay: frames, seqs: seqs}
		}
	}
	return catchUp{lost: true}
}

// ring keeps the last frames of a topic for Last-Event-ID resume. It is
// guarded by its topic's lock.
type ring struct {
	frames []*Frame
	seqs   []uint64
	start  int // index of the oldest frame
	n      int
	// base is the position just before the oldest retained frame: the ring
	// holds every frame of its topic published after base.
	base uint64
}

func newRing(size int, base uint64) *ring {
	if size < 1 {
		size = 1
	}
	return &ring{frames: make([]*Frame, size), seqs: make([]uint64, size), base: base}
}

func (r *ring) push(seq uint64, f *Frame) {
	var i int
	if r.n == len(r.frames) { // full: the oldest makes room
		i = r.start
		r.base = r.seqs[i]
		r.start = (r.start + 1) % len(r.frames)
	} else {
		i = (r.start + r.n) % len(r.frames)
		r.n++
	}
	r.frames[i], r.seqs[i] = f, seq
}

// head is the position of the newest frame (base when empty).
func (r *ring) head() uint64 {
	if r.n == 0 {
		return r.base
	}
	return r.seqs[(r.start+r.n-1)%len(r.frames)]
}

func (r *ring) at(k int) (uint64, *Frame) {
	i := (r.start + k) % len(r.frames)
	return r.seqs[i], r.frames[i]
}

// after returns the frames published after position seq, with their
// positions, and false when the ring cannot prove it holds all of them.
// Positions are process-wide, so seq need not be one of this ring's own:
// any position from base on works (the hub rejects positions it has not yet
// issued), which lets one client resume several topics from one id.
func (r *ring) after(seq uint64) ([]*Frame, []uint64, bool) {
	if seq < r.base {
		return nil, nil, false
	}
	k := sort.Search(r.n, func(k int) bool { s, _ := r.at(k); return s > seq })
	frames := make([]*Frame, 0, r.n-k)
	seqs := make([]uint64, 0, r.n-k)
	for ; k < r.n; k++ {
		s, f := r.at(k)
		frames, seqs = append(frames, f), append(seqs, s)
	}
	return frames, seqs, true
}
