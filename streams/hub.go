package streams

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ErrTooManyTopics is returned by Subscribe when a new topic is needed,
// HubOptions.MaxTopics are live and every one of them has subscribers.
var ErrTooManyTopics = errors.New("streams: too many distinct streams are open")

// Receiver is one client's end of a subscription, implemented by the sink.
type Receiver interface {
	// Send queues f without blocking. It returns false when the client is
	// gone or cannot keep up; the hub then drops the subscription.
	Send(f *Frame) bool
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

// HubOptions configure a Hub.
type HubOptions struct {
	// ReplaySize is how many frames each topic keeps for Last-Event-ID.
	ReplaySize int
	// Linger keeps a topic (its Redis subscription and replay buffer) alive
	// after its last subscriber leaves, so a quick reconnect resumes without a gap.
	Linger time.Duration
	// MaxTopics caps distinct live topics, lingering ones included (each
	// holds a Redis subscription); 0 means no cap. At the cap the oldest
	// lingering topics are released first; when every topic has
	// subscribers, a new one is refused with ErrTooManyTopics.
	MaxTopics int
	Metrics   *Metrics
	Logger    *slog.Logger
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

	// lingering holds the topics without subscribers, oldest first: the
	// ones MaxTopics releases first. Its own lock, since topics join it
	// under their own lock (which h.mu precedes).
	lingerMu  sync.Mutex
	lingering list.List

	// order is held while a frame is numbered and handed out, and while a
	// subscriber is welcomed: so every client receives frames in id order,
	// across topics too, and "everything up to id N" is a true statement.
	order sync.Mutex
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

	// spec is its own spec: a Durable one replays with its own parameters.
	spec Spec
	// catching and stop serve Durable topics (resume_durable.go).
	catching catching
	stop     context.CancelFunc // ends a replay in progress
}

// Subscribe joins r to the topic of spec, starting the topic if it is new.
// r first receives "connected" (once the upstream is live), then, when
// lastID is set, the frames it missed or a "reset" (a fresh snapshot for a
// Healer), then live frames.
func (h *Hub) Subscribe(spec Spec, r Receiver, lastID string) (*Subscription, error) {
	subs, err := h.SubscribeAll([]Join{{Spec: spec}}, r, lastID)
	if err != nil {
		return nil, err
	}
	return subs[0], nil
}

// A Join is one topic a receiver joins. Joins that share a Group get one
// "connected" event between them (a watch of several keys is one stream);
// a Join without one gets its own.
type Join struct {
	Spec  Spec
	Group *Group
	// Fresh joins start now, whatever the receiver's Last-Event-ID: a
	// subscription added to a stream that resumes (its position holds no
	// component for a fresh Durable join), which has nothing to catch up.
	Fresh bool
}

// Group makes one client's subscriptions to several topics look like one
// stream (a watch of several keys): the client gets a single "connected"
// event, with Describe as its data, before any frame of any of the topics.
type Group struct {
	Describe map[string]any
	greeted  bool // guarded by the hub's order lock
}

// SubscribeAll joins r to several topics at once, as one stream: the frames
// each topic missed since lastID are merged in id order, and live frames
// follow in id order too, so one Last-Event-ID resumes them all. When some
// of the topics are Durable, that id is a Position instead (positions.go).
func (h *Hub) SubscribeAll(joins []Join, r Receiver, lastID string) ([]*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	// Nothing starts until the whole request is known to fit.
	topics := make([]*topic, len(joins))
	keys := make([]string, len(joins))
	fresh := 0
	for i, j := range joins {
		keys[i] = j.Spec.Key()
		if slices.Contains(keys[:i], keys[i]) {
			return nil, fmt.Errorf("streams: %q asked for twice", keys[i])
		}
		if topics[i] = h.topics[keys[i]]; topics[i] == nil {
			fresh++
		}
	}
	if err := h.makeRoom(fresh, topics); err != nil {
		return nil, err
	}
	for i, j := range joins {
		if topics[i] == nil {
			topics[i] = h.start(j.Spec)
		}
	}
	h.order.Lock()
	defer h.order.Unlock()
	// Several topics, some Durable: the client's id is a Position.
	receivers, lastIDs := positionReceivers(joins, r, lastID, h.opts.Metrics)
	if receivers == nil {
		lastID = lonePosition(joins, lastID)
	}
	subs := make([]*Subscription, len(topics))
	var welcomes []*Subscription
	for i, t := range topics {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.linger != nil {
			t.linger.Stop()
			t.linger = nil
			h.unlinger(t)
		}
		subs[i] = &Subscription{t: t, r: r, lastID: lastID, idx: len(t.subs), greet: true,
			spec: joins[i].Spec, group: joins[i].Group}
		if receivers != nil {
			subs[i].r, subs[i].lastID = receivers[i], lastIDs[i]
		}
		if joins[i].Fresh {
			subs[i].lastID = ""
		}
		t.subs = append(t.subs, subs[i])
		if t.ready {
			welcomes = append(welcomes, subs[i])
		}
	}
	h.welcome(welcomes)
	return subs, nil
}

// Close leaves the topic. It is safe to call more than once.
func (s *Subscription) Close() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remove(s)
}

// Metrics returns the collectors the hub reports to, for operators built outside it.
func (h *Hub) Metrics() *Metrics { return h.opts.Metrics }

// Topics returns how many topics (upstream subscriptions) are live.
func (h *Hub) Topics() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics)
}

// Starting returns how many of keys have no topic yet (lingering ones count
// as there): what joining them all would start.
func (h *Hub) Starting(keys []string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, k := range keys {
		if h.topics[k] == nil {
			n++
		}
	}
	return n
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
	t := &topic{
		hub:    h,
		key:    spec.Key(),
		spec:   spec,
		ctx:    ctx,
		cancel: cancel,
		events: h.opts.Metrics.EventsIn.WithLabelValues(spec.Source()),
	}
	t.resume = newResumer(t, h, seq)
	h.topics[t.key] = t
	h.opts.Metrics.Topics.Inc()
	h.opts.Metrics.PipelinesStarted.Inc()
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
	t.cancel() // before unlinger: lingered skips a cancelled topic
	h.unlinger(t)
	h.opts.Logger.Debug("topic stopped", "stream", t.key)
}

// makeRoom releases the oldest lingering topics, none of keep, until n new
// topics fit under MaxTopics; it releases nothing if they cannot fit.
// Called with h.mu held.
func (h *Hub) makeRoom(n int, keep []*topic) error {
	over := len(h.topics) + n - h.opts.MaxTopics
	if h.opts.MaxTopics <= 0 || n == 0 || over <= 0 {
		return nil
	}
	h.lingerMu.Lock()
	var victims []*topic
	for e := h.lingering.Front(); e != nil && len(victims) < over; e = e.Next() {
		if t := e.Value.(*topic); !slices.Contains(keep, t) {
			victims = append(victims, t)
		}
	}
	h.lingerMu.Unlock()
	if len(victims) < over {
		h.opts.Metrics.TopicsRefused.Inc()
		return ErrTooManyTopics
	}
	// Joins need h.mu, which is held: no victim can gain a subscriber.
	for _, t := range victims {
		t.mu.Lock()
		if t.linger != nil {
			t.linger.Stop()
			t.linger = nil
		}
		t.mu.Unlock()
		h.stop(t)
		h.opts.Metrics.TopicsEvicted.Inc()
		h.opts.Logger.Debug("lingering topic released early", "stream", t.key, "max_topics", h.opts.MaxTopics)
	}
	return nil
}

// lingered puts t at the end of the lingering list. Called with t.mu held.
func (h *Hub) lingered(t *topic) {
	h.lingerMu.Lock()
	defer h.lingerMu.Unlock()
	if t.lingerAt == nil && t.ctx.Err() == nil { // not stopped already
		t.lingerAt = h.lingering.PushBack(t)
	}
}

// unlinger takes t off the lingering list, if it is on it.
func (h *Hub) unlinger(t *topic) {
	h.lingerMu.Lock()
	defer h.lingerMu.Unlock()
	if t.lingerAt != nil {
		h.lingering.Remove(t.lingerAt)
		t.lingerAt = nil
	}
}
