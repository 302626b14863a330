package streams

import "context"

// Durable is a Spec whose events carry ids of the source's own (Event.ID):
// ordered, and valid across processes and restarts, like Redis Stream entry
// ids. Its subscribers resume from the source's history instead of the
// hub's replay ring, so a client that reconnects after a restart, or to
// another process, loses nothing and sees nothing twice.
//
// A joining subscriber is held in a catching-up state: Replay reads its
// history up to the topic's head while live events wait in a bounded
// per-subscriber buffer; then the buffer is flushed, skipping what the
// subscriber already has. If the buffer overflows it is dropped and the
// history is read again up to the new head, so the seam is exact however
// fast the stream grows.
type Durable interface {
	Spec
	// Replay emits what a subscriber must see before the live events, in
	// order: a Ready whose ID, when set, is the subscriber's starting
	// position (the id of its "connected" event, so that a reconnect
	// before any event resumes there); a Gap when the history after
	// lastID is not whole (Reason ResetExpiredID or ResetUnknownID, ID the
	// first id still available); then the Data events after its position
	// up to and including head, the newest id the topic has published.
	// lastID is the client's Last-Event-ID, "" for none, in which case the
	// spec's own parameters choose where to start. Replay stops when emit
	// returns false, and returns the id of the last event the subscriber
	// has, "" if it got no position yet (also on error).
	Replay(ctx context.Context, lastID, head string, emit func(Event) bool) (string, error)
	// CompareIDs orders two ids of the stream, like strings.Compare.
	CompareIDs(a, b string) int
}

// Paced is a Receiver that can hold a sender back until it has room. A
// replay waits on it before each event, so that catching up on a long
// history does not overflow a slow client's queue (live frames need no
// such wait: they come no faster than they are written).
type Paced interface {
	Receiver
	// WaitRoom returns true once the receiver can take more, false when
	// it is gone or ctx ends first.
	WaitRoom(ctx context.Context) bool
}

// catchUp starts the replay of a Durable topic's subscriber. Called with
// t.mu held, once the topic is ready.
func (t *topic) catchUp(s *Subscription) {
	s.greet = false
	s.catching = true
	ctx, cancel := context.WithCancel(t.ctx)
	s.stop = cancel
	t.hub.wg.Add(1)
	go t.replay(ctx, s, t.head)
}

// hold decides what happens to a live frame of a Durable topic for s: it
// reports true when the frame must not be sent now, because s is still
// catching up (the frame waits) or already has it (a client that comes from
// a process further ahead). Called with t.mu held.
func (t *topic) hold(s *Subscription, f *Frame) bool {
	if s.catching {
		switch {
		case s.overrun:
		case len(s.pending) >= t.hub.opts.ReplaySize:
			s.pending, s.overrun = nil, true // read them from history instead
		default:
			s.pending = append(s.pending, f)
		}
		return true
	}
	if s.after != "" && f.ID != "" {
		if t.durable.CompareIDs(f.ID, s.after) <= 0 {
			return true
		}
		s.after = "" // past it: ids only grow
	}
	return false
}

// replay runs Replay for s until it has joined the live frames.
func (t *topic) replay(ctx context.Context, s *Subscription, head string) {
	defer t.hub.wg.Done()
	d, ok := s.spec.(Durable)
	if !ok {
		d = t.durable
	}
	from, greeted := s.lastID, false
	emit := func(ev Event) bool { return t.emit(ctx, s, ev, &greeted) }
	var wait backoff
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
			if !wait.wait(ctx) {
				return
			}
			continue
		}
		t.mu.Lock()
		if s.idx < 0 {
			t.mu.Unlock()
			return
		}
		if s.overrun { // live frames were dropped: read them from history
			s.overrun, s.pending, head = false, nil, t.head
			t.mu.Unlock()
			continue
		}
		pending := s.pending
		s.pending, s.catching, s.after = nil, false, from
		for _, f := range pending {
			if t.hold(s, f) {
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
func (t *topic) emit(ctx context.Context, s *Subscription, ev Event, greeted *bool) bool {
	m := t.hub.opts.Metrics
	var f *Frame
	switch ev.Kind {
	case Ready:
		if *greeted { // a retried replay: the client has its "connected"
			return true
		}
		*greeted = true
		f = mustFrame(ev.ID, "connected", s.spec.Describe())
	case Gap:
		m.Resets.WithLabelValues(ev.Reason).Inc()
		d := resetData(ev.Reason, "")
		if ev.ID != "" {
			d["first"] = ev.ID
		}
		f = mustFrame("", "reset", d)
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
