package streams

import (
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Event ids are "<epoch>-<seq>". The epoch is fixed for the life of the
// process, so an id from another process (or a restarted one) is recognised
// as foreign; seq comes from one process-wide counter, so an id of one topic
// is never mistaken for a position in another.
type ids struct {
	epoch string
	seq   atomic.Uint64
}

func newIDs() *ids {
	return &ids{epoch: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

func (g *ids) next() (uint64, string) {
	n := g.seq.Add(1)
	return n, g.format(n)
}

// issued is the newest position handed out; no id beyond it is genuine.
func (g *ids) issued() uint64 { return g.seq.Load() }

func (g *ids) format(n uint64) string {
	return g.epoch + "-" + strconv.FormatUint(n, 10)
}

// parse returns the sequence number of an id of this process.
func (g *ids) parse(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != g.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// Reset reasons, sent in the data of a "reset" event.
const (
	ResetUnknownID = "unknown-id" // not an id of this process
	ResetExpiredID = "expired-id" // ours, but no longer in the replay buffer
	ResetGap       = "upstream-gap"
)

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
