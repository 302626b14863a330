package streams

import (
	"cmp"
	"context"
	"errors"
	"slices"
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
	hub     *Hub
	key     string
	spec    Spec
	durable Durable // spec, when its events carry their own ids
	ctx     context.Context
	cancel  func()
	events  prometheus.Counter

	mu     sync.Mutex
	subs   []*Subscription
	ring   *ring
	ready  bool
	linger *time.Timer
	head   string // Durable topics: the newest id published
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
			t.markReady(ev.ID)
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
// same frame to every subscriber. Events of a Durable topic keep their own
// ids and need no ring: their history is the source's.
func (t *topic) publish(ev Event) {
	h := t.hub
	h.order.Lock()
	defer h.order.Unlock()
	var seq uint64
	id := ev.ID
	if t.durable == nil {
		seq, id = h.ids.next()
	}
	f, err := EncodeFrame(id, ev.Name, ev.Data, ev.Raw)
	if err != nil {
		h.opts.Logger.Warn("event not encodable", "stream", t.key, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.durable == nil {
		t.ring.push(seq, f)
	} else if id != "" {
		t.head = id
	}
	sent := 0
	for i := 0; i < len(t.subs); {
		s := t.subs[i]
		if s.greet { // joined before the upstream was live: nothing to send yet
			i++
			continue
		}
		if t.durable != nil && t.hold(s, f) {
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
	h.opts.Metrics.FramesOut.Add(float64(sent))
}

// markReady welcomes those who joined while the upstream was starting.
// head is where a Durable upstream starts reading.
func (t *topic) markReady(head string) {
	h := t.hub
	h.order.Lock()
	defer h.order.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready {
		return
	}
	t.ready = true
	if t.durable != nil {
		t.head = head
	}
	var waiting []*Subscription
	for _, s := range t.subs {
		if s.greet {
			waiting = append(waiting, s)
		}
	}
	for _, s := range waiting { // one by one: each has its own receiver
		h.welcome([]*Subscription{s})
	}
}

// welcome sends subscriptions of ONE receiver their "connected" events (one
// per Group), then what they missed in id order; when the rings cannot vouch
// for the client's last id, a fresh snapshot from each Healer and, unless
// every topic healed, a "reset". Durable topics' subscribers catch up from
// the source's history instead. It is called with h.order and the lock of
// every topic involved held.
func (h *Hub) welcome(subs []*Subscription) {
	subs = slices.DeleteFunc(subs, func(s *Subscription) bool {
		if s.t.durable != nil {
			s.t.catchUp(s)
			return true
		}
		return false
	})
	if len(subs) == 0 {
		return
	}
	ids, m := h.ids, h.opts.Metrics
	lastID := subs[0].lastID
	now := ids.issued() // with h.order held, everything up to now is delivered
	var seq uint64
	known := lastID != ""
	if known {
		var ok bool
		seq, ok = ids.parse(lastID)
		known = ok && seq <= now
	}
	// Per topic: replay what the ring holds after the client's position;
	// where it cannot, a state stream heals with a snapshot and any other
	// makes the client reset.
	type pending struct {
		seq uint64
		f   *Frame
	}
	var replay []pending
	var heals []*Frame
	reset := ""
	for _, s := range subs {
		if known {
			if frames, seqs, ok := s.t.ring.after(seq); ok {
				for i, f := range frames {
					replay = append(replay, pending{seqs[i], f})
				}
				continue
			}
		}
		if healer, ok := s.t.spec.(Healer); ok {
			if ev, ok := healer.Heal(); ok {
				if f, err := EncodeFrame("", ev.Name, ev.Data, ev.Raw); err == nil {
					heals = append(heals, f)
				}
			}
			continue
		}
		switch {
		case lastID == "":
		case !known:
			reset = ResetUnknownID
		case reset == "":
			reset = ResetExpiredID
		}
	}
	slices.SortFunc(replay, func(a, b pending) int { return cmp.Compare(a.seq, b.seq) })
	// A resuming client keeps its own last id until the replay moves it on
	// (a snapshot needs no position: it is sent again); any other is placed
	// at now, so that a reconnect before the first event resumes without a gap.
	id := ""
	if !known || reset != "" {
		id = ids.format(now)
	}
	var out []*Frame
	for _, s := range subs {
		s.greet = false
		switch g := s.group; {
		case g == nil:
			out = append(out, mustFrame(id, "connected", s.t.spec.Describe()))
		case !g.greeted:
			g.greeted = true
			out = append(out, mustFrame(id, "connected", g.Describe))
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
	if s.stop != nil {
		s.stop() // ends a replay in progress
	}
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
