package streams

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/reactivex/rxgo/v2"
)

// ErrClosed is returned by Subscribe once the hub is shutting down.
var ErrClosed = errors.New("streams: hub closed")

// topic is one live stream: one upstream pipeline, its replay ring and the
// subscribers it fans out to.
type topic struct {
	hub    *Hub
	key    string
	spec   Spec
	cancel func()
	events prometheus.Counter

	mu     sync.Mutex
	subs   []*Subscription
	ring   *ring
	ready  bool
	linger *time.Timer
}

// run drains the pipeline until the upstream is released.
func (t *topic) run(obs rxgo.Observable) {
	defer t.hub.wg.Done()
	log := t.hub.opts.Logger
	for item := range obs.Observe() {
		if item.E != nil {
			log.Warn("stream pipeline error", "stream", t.key, "err", item.E)
			continue
		}
		ev, ok := item.V.(Event)
		if !ok {
			log.Warn("stream pipeline produced a non-event", "stream", t.key)
			continue
		}
		switch ev.Kind {
		case Ready:
			t.markReady()
		case Gap:
			t.hub.opts.Metrics.Resets.WithLabelValues(ResetGap).Inc()
			t.publish(Event{Name: "reset", Data: resetData(ResetGap, ev.Reason)})
		default:
			t.events.Inc()
			t.publish(ev)
		}
	}
}

// publish numbers and encodes ev once, keeps it for replay and hands the
// same frame to every subscriber.
func (t *topic) publish(ev Event) {
	seq, id := t.hub.ids.next()
	f, err := EncodeFrame(id, ev.Name, ev.Data, ev.Raw)
	if err != nil {
		t.hub.opts.Logger.Warn("event not encodable", "stream", t.key, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring.push(seq, f)
	sent := 0
	for i := 0; i < len(t.subs); {
		s := t.subs[i]
		if s.greet { // joined before the upstream was live: nothing to send yet
			i++
			continue
		}
		if !s.r.Send(f) {
			t.remove(s) // swaps the last subscriber into i
			continue
		}
		sent++
		i++
	}
	t.hub.opts.Metrics.FramesOut.Add(float64(sent))
}

func (t *topic) markReady() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready {
		return
	}
	t.ready = true
	for i := 0; i < len(t.subs); {
		s := t.subs[i]
		if t.welcome(s) {
			i++
		}
	}
}

// welcome sends s its "connected" event and what it missed: the replay, or
// when the ring cannot vouch for its last id, a fresh snapshot (Healer) or a
// "reset". It returns false if s was dropped meanwhile. Called with t.mu held.
func (t *topic) welcome(s *Subscription) bool {
	s.greet = false
	ids, m := t.hub.ids, t.hub.opts.Metrics
	var replay []*Frame
	reset := ""
	if s.lastID != "" {
		if seq, ok := ids.parse(s.lastID); !ok || seq > ids.issued() {
			reset = ResetUnknownID
		} else if replay, ok = t.ring.after(seq); !ok {
			reset = ResetExpiredID
		}
	}
	var heal *Frame
	if h, ok := t.spec.(Healer); ok && (s.lastID == "" || reset != "") {
		heal = h.Heal()
	}
	if !t.greet(s, reset != "") {
		return false
	}
	var out []*Frame
	switch {
	case heal != nil:
		m.Healed.Inc()
		out = append(out, heal)
	case reset != "":
		m.Resets.WithLabelValues(reset).Inc()
		out = append(out, mustFrame("", "reset", resetData(reset, "")))
	}
	out = append(out, replay...)
	m.Replayed.Add(float64(len(replay)))
	for _, f := range out {
		if !s.r.Send(f) {
			t.remove(s)
			return false
		}
	}
	return true
}

// greet sends "connected", once per group. A resuming client keeps its own
// last id until the replay moves it on; any other client is placed at the
// head (the process-wide position, for a group), so that a reconnect before
// the first event still resumes without a gap. Called with t.mu held.
func (t *topic) greet(s *Subscription, reset bool) bool {
	ids := t.hub.ids
	placed := s.lastID == "" || reset
	var f *Frame
	if g := s.group; g != nil {
		// The group's lock keeps every other topic's frames behind this one.
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.greeted {
			return true
		}
		g.greeted = true
		id := ""
		if placed {
			id = ids.format(ids.issued())
		}
		f = mustFrame(id, "connected", g.Describe)
	} else {
		id := ""
		if placed {
			id = ids.format(t.ring.head())
		}
		f = mustFrame(id, "connected", t.spec.Describe())
	}
	if !s.r.Send(f) {
		t.remove(s)
		return false
	}
	return true
}

// remove drops s; the last one out starts the linger. Called with t.mu held.
func (t *topic) remove(s *Subscription) {
	if s.idx < 0 {
		return
	}
	last := len(t.subs) - 1
	t.subs[s.idx] = t.subs[last]
	t.subs[s.idx].idx = s.idx
	t.subs[last] = nil
	t.subs = t.subs[:last]
	s.idx = -1
	if len(t.subs) == 0 && t.linger == nil {
		t.linger = time.AfterFunc(t.hub.opts.Linger, t.expire)
	}
}

// expire stops the topic if nobody joined during the linger.
func (t *topic) expire() {
	h := t.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	t.mu.Lock()
	idle := len(t.subs) == 0
	t.linger = nil
	t.mu.Unlock()
	if idle {
		h.stop(t)
	}
}

func resetData(reason, detail string) map[string]string {
	d := map[string]string{"reason": reason}
	if detail != "" {
		d["detail"] = detail
	}
	return d
}

func mustFrame(id, name string, data any) *Frame {
	f, err := EncodeFrame(id, name, data, nil)
	if err != nil {
		panic(err) // only our own maps of strings reach here
	}
	return f
}
