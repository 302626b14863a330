package streams

import (
	"cmp"
	"context"
	"maps"
)

// durableResume is the resume strategy of Durable streams: events keep
// the source's own ids and there is no ring; a joining subscriber catches
// up from the source's history. It is held in a catching-up state while
// Replay reads its history up to the topic's head and live frames wait in
// a bounded per-subscriber buffer; then the buffer is flushed, skipping
// what the subscriber already has. If the buffer overflows it is dropped
// and the history is read again up to the new head, so the seam is exact
// however fast the stream grows.
type durableResume struct {
	t    *topic
	d    Durable
	head string // the newest id published
}

// catching is a Durable subscriber's catch-up state, guarded by its topic's lock.
type catching struct {
	active  bool     // replaying history; live frames wait in pending
	pending []*Frame // live frames that arrived while catching up
	overrun bool     // pending overflowed: replay again up to the new head
	after   string   // live frames up to this id were delivered already
}

func (r *durableResume) id(ev Event) (uint64, string) { return 0, ev.ID }

func (r *durableResume) keep(_ uint64, f *Frame) {
	if f.ID != "" {
		r.head = f.ID
	}
}

func (r *durableResume) ready(head string) { r.head = head }

// rejoin starts the subscriber's replay, which greets it itself.
func (r *durableResume) rejoin(s *Subscription, _ position) catchUp {
	t := r.t
	s.greet = false
	s.catching.active = true
	ctx, cancel := context.WithCancel(t.ctx)
	s.stop = cancel
	t.hub.wg.Add(1)
	go r.replay(ctx, s, r.head)
	return catchUp{self: true}
}

// hold decides what happens to a live frame of a Durable topic for s: it
// reports true when the frame must not be sent now, because s is still
// catching up (the frame waits) or already has it (a client that comes from
// a process further ahead). Called with t.mu held.
func (r *durableResume) hold(s *Subscription, f *Frame) bool {
	c := &s.catching
	if c.active {
		switch {
		case c.overrun:
		case len(c.pending) >= r.t.hub.opts.ReplaySize:
			c.pending, c.overrun = nil, true // read them from history instead
		default:
			c.pending = append(c.pending, f)
		}
		return true
	}
	if c.after != "" && f.ID != "" {
		if r.d.CompareIDs(f.ID, c.after) <= 0 {
			return true
		}
		c.after = "" // past it: ids only grow
	}
	return false
}

// replay runs Replay for s until it has joined the live frames.
func (r *durableResume) replay(ctx context.Context, s *Subscription, head string) {
	t := r.t
	defer t.hub.wg.Done()
	d, ok := s.spec.(Durable)
	if !ok {
		d = r.d
	}
	from, greeted := s.lastID, false
	emit := func(ev Event) bool { return r.emit(ctx, s, ev, &greeted) }
	var wait Backoff
	for {
		pos, err := d.Replay(ctx, from, head, emit)
		if pos != "" {
			from = pos
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			t.hub.opts.Logger.Warn("reading stream history failed; retrying", "stream", t.key, "err", err)
			if !wait.Wait(ctx) {
				return
			}
			continue
		}
		t.mu.Lock()
		if s.idx < 0 {
			t.mu.Unlock()
			return
		}
		c := &s.catching
		if c.overrun { // live frames were dropped: read them from history
			c.overrun, c.pending, head = false, nil, r.head
			t.mu.Unlock()
			continue
		}
		pending := c.pending
		c.pending, c.active, c.after = nil, false, from
		if cu, ok := s.r.(caughtUpReceiver); ok && from != "" {
			cu.caughtUp(from) // before the live frames after it
		}
		for _, f := range pending {
			if r.hold(s, f) {
				continue
			}
			if !s.r.Send(f) {
				t.remove(s)
				break
			}
		}
		t.mu.Unlock()
		return
	}
}

// emit encodes one replayed event for s alone. It runs without t.mu: live
// frames wait in s.pending meanwhile, so order is kept.
func (r *durableResume) emit(ctx context.Context, s *Subscription, ev Event, greeted *bool) bool {
	t := r.t
	m := t.hub.opts.Metrics
	var f *Frame
	switch ev.Kind {
	case Ready:
		if *greeted { // a retried replay: the client has its "connected"
			return true
		}
		*greeted = true
		f = mustFrame(ev.ID, "connected", describeDurable(s))
	case Gap:
		code := cmp.Or(ev.Code, ResetGap)
		m.Resets.WithLabelValues(code).Inc()
		d := resetData(code, ev.Reason)
		id := ""
		switch {
		case ev.ID == "":
		case code == ResetExpiredID || code == ResetUnknownID: // the history after lastID is not whole: where it starts now
			d["first"] = ev.ID
		default: // a reset entry of the history (upstream-gap, overflow, notify-config): it has its own id
			id = ev.ID
		}
		f = mustFrame(id, "reset", d)
	default:
		var err error
		if f, err = EncodeFrame(ev.ID, ev.Name, ev.Data, ev.Raw); err != nil {
			t.hub.opts.Logger.Warn("event not encodable", "stream", t.key, "err", err)
			return true
		}
		m.Replayed.Inc()
	}
	if p, ok := s.r.(Paced); ok && !p.WaitRoom(ctx) && ctx.Err() != nil {
		return false
	}
	if s.r.Send(f) {
		return true
	}
	t.mu.Lock()
	t.remove(s)
	t.mu.Unlock()
	return false
}

// describeDurable is a Durable subscriber's "connected" data: in position
// mode it says which component of the position is this sub's, so a client
// that changes its subs can carry the others' components over.
func describeDurable(s *Subscription) map[string]any {
	d := s.spec.Describe()
	if ps, ok := s.r.(*positionSub); ok && ps.i >= 0 {
		d = maps.Clone(d)
		d["position"] = ps.i
	}
	return d
}
