package streams

import (
	"cmp"
	"container/list"
	"context"
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
	ctx    context.Context
	cancel func()
	events prometheus.Counter

	mu     sync.Mutex
	subs   []*Subscription
	resume resumer
	ready  bool
	linger *time.Timer
	// lingerAt is t's place in the hub's lingering list (guarded by the
	// hub's lingerMu); nil while it has subscribers.
	lingerAt *list.Element
}

// run drains the pipeline until the upstream is released.
func (t *topic) run(obs rxgo.Observable) {
	defer t.hub.wg.Done()
	logger := t.hub.opts.Logger
	for item := range obs.Observe() {
		if item.E != nil {
			logger.Warn("stream pipeline error", "stream", t.key, "err", item.E)
			continue
		}
		ev, ok := item.V.(Event)
		if !ok {
			logger.Warn("stream pipeline produced a non-event", "stream", t.key)
			continue
		}
		switch ev.Kind {
		case Ready:
			t.markReady(ev.ID)
		case Gap:
			code := cmp.Or(ev.Code, ResetGap)
			t.hub.opts.Metrics.Resets.WithLabelValues(code).Inc()
			reset := Event{Name: "reset", Data: resetData(code, ev.Reason)}
			// A journal's reset entry: the reset is at that entry, so it
			// carries its id, and a client that got it resumes past it.
			if _, durable := t.resume.(*durableResume); durable && code != ResetExpiredID && code != ResetUnknownID {
				reset.ID = ev.ID
			}
			t.publish(reset)
		default:
			t.events.Inc()
			t.publish(ev)
		}
	}
}

// publish numbers and encodes ev once, keeps it for those who resume and
// hands the same frame to every subscriber.
func (t *topic) publish(ev Event) {
	h := t.hub
	h.order.Lock()
	defer h.order.Unlock()
	seq, id := t.resume.id(ev)
	f, err := EncodeFrame(id, ev.Name, ev.Data, ev.Raw)
	if err != nil {
		h.opts.Logger.Warn("event not encodable", "stream", t.key, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resume.keep(seq, f)
	// Only a durable topic ever holds frames back: skip the call per
	// subscriber on every other one (tens of thousands of them per event).
	holder, _ := t.resume.(*durableResume)
	sent := 0
	for i := 0; i < len(t.subs); {
		s := t.subs[i]
		if s.greet { // joined before the upstream was live: nothing to send yet
			i++
			continue
		}
		if holder != nil && holder.hold(s, f) {
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
// head is where an upstream with ids of its own starts reading.
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
	t.resume.ready(head)
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
		t.hub.lingered(t)
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
	h.unlinger(t)
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
