package streams

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Receiver is one client's end of a subscription, implemented by the sink.
type Receiver interface {
	// Send queues f without blocking. It returns false when the client is
	// gone or cannot keep up; the hub then drops the subscription.
	Send(f *Frame) bool
}

// HubOptions configure a Hub.
type HubOptions struct {
	// ReplaySize is how many frames each topic keeps for Last-Event-ID.
	ReplaySize int
	// Linger keeps a topic (its Redis subscription and replay buffer) alive
	// after its last subscriber leaves, so a quick reconnect resumes without a gap.
	Linger  time.Duration
	Metrics *Metrics
	Logger  *slog.Logger
}

// Hub multicasts topics to subscribers. It is Keyflux's own fan-out: rxgo
// pipelines end at a topic, and from there one encoded frame is handed to
// every subscriber's queue, never blocking on any of them.
type Hub struct {
	opts HubOptions
	ids  *ids

	mu     sync.Mutex
	topics map[string]*topic
	closed bool
	wg     sync.WaitGroup
}

// NewHub returns an empty hub.
func NewHub(opts HubOptions) *Hub {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReplaySize <= 0 {
		opts.ReplaySize = 1024
	}
	return &Hub{opts: opts, ids: newIDs(), topics: make(map[string]*topic)}
}

// Subscription is one receiver's membership of one topic.
type Subscription struct {
	t      *topic
	r      Receiver
	lastID string
	group  *Group
	idx    int  // position in t.subs, -1 once removed
	greet  bool // still owed its "connected" event
}

// Group makes one client's subscriptions to several topics look like one
// stream (a watch of several keys): the client gets a single "connected"
// event, with Describe as its data, before any frame of any of the topics.
// Its id is the process-wide position at that moment, from which every
// topic of the group can resume.
type Group struct {
	Describe map[string]any

	mu      sync.Mutex
	greeted bool
}

// Subscribe joins r to the topic of spec, starting the topic if it is new.
// r first receives "connected" (once the upstream is live), then, when
// lastID is set, the frames it missed or a "reset" (a fresh snapshot for a
// Healer), then live frames.
func (h *Hub) Subscribe(spec Spec, r Receiver, lastID string) (*Subscription, error) {
	return h.SubscribeGroup(spec, r, lastID, nil)
}

// SubscribeGroup is Subscribe for one of several topics a client watches as
// one stream; g (shared by the client's subscriptions) may be nil.
func (h *Hub) SubscribeGroup(spec Spec, r Receiver, lastID string, g *Group) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	t := h.topics[spec.Key()]
	if t == nil {
		t = h.start(spec)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.linger != nil {
		t.linger.Stop()
		t.linger = nil
	}
	s := &Subscription{t: t, r: r, lastID: lastID, group: g, idx: len(t.subs), greet: true}
	t.subs = append(t.subs, s)
	if t.ready {
		t.welcome(s)
	}
	return s, nil
}

// Close leaves the topic. It is safe to call more than once.
func (s *Subscription) Close() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remove(s)
}

// Topics returns how many topics (upstream subscriptions) are live.
func (h *Hub) Topics() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics)
}

// Subscribers returns how many subscribers the topic of key has.
func (h *Hub) Subscribers(key string) int {
	h.mu.Lock()
	t := h.topics[key]
	h.mu.Unlock()
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

// Close stops every topic and waits until their upstreams are released.
// Subscribers are not told; the sink closes its clients itself.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for _, t := range h.topics {
		h.stop(t)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// start creates and runs the topic of spec. Called with h.mu held.
func (h *Hub) start(spec Spec) *topic {
	seq, _ := h.ids.next()
	ctx, cancel := context.WithCancel(context.Background())
	size := h.opts.ReplaySize
	if _, ok := spec.(Healer); ok {
		size = 1 // see Healer
	}
	t := &topic{
		hub:    h,
		key:    spec.Key(),
		spec:   spec,
		cancel: cancel,
		ring:   newRing(size, seq),
		events: h.opts.Metrics.EventsIn.WithLabelValues(spec.Source()),
	}
	h.topics[t.key] = t
	h.opts.Metrics.Topics.Inc()
	h.wg.Add(1)
	obs := spec.Open(ctx)
	go t.run(obs)
	h.opts.Logger.Debug("topic started", "stream", t.key)
	return t
}

// stop releases the topic's upstream. Called with h.mu held.
func (h *Hub) stop(t *topic) {
	if h.topics[t.key] != t {
		return
	}
	delete(h.topics, t.key)
	h.opts.Metrics.Topics.Dec()
	t.cancel()
	h.opts.Logger.Debug("topic stopped", "stream", t.key)
}
