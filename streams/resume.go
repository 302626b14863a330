package streams

import (
	"cmp"
	"slices"
)

// A resumer is a topic's resume strategy: how its live frames get their
// ids and are kept, and how a subscriber that joins, perhaps with a
// Last-Event-ID, is brought up to date. There are three:
//
//   - ringResume (resume_ring.go): ids of this process, a replay ring;
//   - healResume (resume_heal.go): the same, and a fresh snapshot where
//     the ring cannot vouch for the client (state streams, Healer);
//   - durableResume (resume_durable.go): the source's own ids, and a
//     catch-up from the source's history (Durable).
//
// Every method but id is called with the topic's lock held; id, and
// rejoin, with the hub's order lock held too.
type resumer interface {
	// id returns a live event's position in this process's numbering (0
	// for none) and its SSE id.
	id(ev Event) (uint64, string)
	// keep records a frame just published.
	keep(seq uint64, f *Frame)
	// ready records where the upstream starts: the ID of its Ready event.
	ready(head string)
	// hold reports whether live frame f must not go to s now (publish
	// calls it on durable topics only: the others never hold).
	hold(s *Subscription, f *Frame) bool
	// rejoin says what s needs before live frames; at is the client's
	// position in this process's numbering.
	rejoin(s *Subscription, at position) catchUp
}

// newResumer picks the strategy spec's kind of stream calls for.
func newResumer(t *topic, h *Hub, base uint64) resumer {
	switch spec := t.spec.(type) {
	case Durable:
		return &durableResume{t: t, d: spec}
	case Healer:
		// One frame is enough to tell a client that missed nothing or one
		// change from one that missed more, who gets a snapshot instead.
		return &healResume{ringResume: ringResume{ids: h.ids, ring: newRing(1, base)}, h: spec}
	}
	return &ringResume{ids: h.ids, ring: newRing(h.opts.ReplaySize, base)}
}

// position is where a client says it is: a Last-Event-ID read as one of
// this process's ids.
type position struct {
	given bool   // the client sent an id
	known bool   // it is one of ours, already issued
	seq   uint64 // its place in the process-wide numbering
}

// catchUp is what a joining subscriber needs before live frames.
type catchUp struct {
	replay []*Frame // frames it missed,
	seqs   []uint64 // with their positions
	heal   *Frame   // or the current state (a "snapshot") instead,
	lost   bool     // or neither: the client must reset.
	// self says the strategy serves the subscriber itself (a durable
	// catch-up), "connected" included.
	self bool
}

// welcome sends subscriptions of ONE receiver their "connected" events (one
// per Group), then what they missed in id order, as each topic's resumer
// says: replayed frames, fresh snapshots and, when some topic cannot
// vouch for the client's last id, one "reset". It is called with h.order
// and the lock of every topic involved held.
func (h *Hub) welcome(subs []*Subscription) {
	if len(subs) == 0 {
		return
	}
	// The receiver's Last-Event-ID: in position mode Durable subs hold
	// their component instead, and fresh ones (Join.Fresh) none.
	lastID := subs[0].lastID
	for _, s := range subs {
		if _, durable := s.t.resume.(*durableResume); !durable && s.lastID != "" {
			lastID = s.lastID
			break
		}
	}
	now := h.ids.issued() // with h.order held, everything up to now is delivered
	at := position{given: lastID != ""}
	if at.given {
		seq, ok := h.ids.parse(lastID)
		at.known, at.seq = ok && seq <= now, seq
	}
	type numbered struct {
		seq uint64
		f   *Frame
	}
	var replay []numbered
	var heals []*Frame
	lost := false
	subs = slices.DeleteFunc(subs, func(s *Subscription) bool {
		// A fresh sub of a resuming receiver starts now: nothing to replay,
		// nothing lost (a snapshot for a Healer), even when an earlier
		// connection already started its topic.
		_, durable := s.t.resume.(*durableResume)
		fresh := at.given && s.lastID == "" && !durable
		sat := at
		if fresh {
			sat = position{}
		}
		c := s.t.resume.rejoin(s, sat)
		if fresh {
			c.lost = false
		}
		for i, f := range c.replay {
			replay = append(replay, numbered{c.seqs[i], f})
		}
		if c.heal != nil {
			heals = append(heals, c.heal)
		}
		lost = lost || c.lost
		return c.self
	})
	if len(subs) == 0 {
		return
	}
	slices.SortFunc(replay, func(a, b numbered) int { return cmp.Compare(a.seq, b.seq) })
	reset := ""
	switch {
	case !lost || !at.given:
	case !at.known:
		reset = ResetUnknownID
	default:
		reset = ResetExpiredID
	}
	// A resuming client keeps its own last id until the replay moves it on
	// (a snapshot needs no position: it is sent again); any other is placed
	// at now, so that a reconnect before the first event resumes without a gap.
	id := ""
	if !at.known || reset != "" {
		id = h.ids.format(now)
	}
	m := h.opts.Metrics
	var out, late []*Frame
	for _, s := range subs {
		s.greet = false
		// A fresh sub of a resuming receiver (Join.Fresh) is greeted last,
		// with the id of now: the client's position then covers where its
		// topic starts, so a later resume does not find it expired.
		to, cid := &out, id
		if at.given && s.lastID == "" {
			to, cid = &late, h.ids.format(now)
		}
		switch g := s.group; {
		case g == nil:
			*to = append(*to, mustFrame(cid, "connected", s.t.spec.Describe()))
		case !g.greeted:
			g.greeted = true
			*to = append(*to, mustFrame(cid, "connected", g.Describe))
		}
	}
	if reset != "" {
		m.Resets.WithLabelValues(reset).Inc()
		out = append(out, mustFrame("", "reset", resetData(reset, "")))
	}
	m.Healed.Add(float64(len(heals)))
	out = append(out, heals...)
	for _, p := range replay {
		out = append(out, p.f)
	}
	m.Replayed.Add(float64(len(replay)))
	out = append(out, late...)
	r := subs[0].r
	for _, f := range out {
		if !r.Send(f) {
			for _, s := range subs {
				s.t.remove(s)
			}
			return
		}
	}
}
