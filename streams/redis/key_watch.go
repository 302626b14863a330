package redis

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// KeyWatches watches the values of single keys, driven by Redis client-side
// caching: one topic per key, whatever set of keys each client asked for, so
// a change is read once and its encoded frame multicast to every watcher.
type KeyWatches struct {
	// Values reads through the caching client whose invalidations reach
	// Invalidations.
	Values        *Values
	Invalidations *Invalidations
	// Upstreams subscribes on the caching client too, to each watched key's
	// keyspace channel: only that says why a key went away, and on the same
	// connection Redis sends its event before the reply of the read that
	// finds the key gone.
	Upstreams *Upstreams
	// Cluster, on a Redis Cluster, subscribes the keyspace channels
	// instead: on every master, since only the key's owner publishes them
	// and the owner changes with failovers and migrations. Those are other
	// connections than the caching one, so a deletion's reason may come
	// after the read (awaitDeletion waits for it). Every change of a key's
	// slot owner re-reads the key (follow).
	Cluster *ClusterUpstreams
	// Notify re-applies keyspace flags after a (re)subscription; may be nil.
	Notify *NotifyConfig
	DB     int
	Logger *slog.Logger

	following sync.Once
}

// Stream returns the spec of the watch of key.
func (k *KeyWatches) Stream(key string) streams.Spec { return &keyWatchSpec{k: k, key: key} }

type keyWatchSpec struct {
	k     *KeyWatches
	key   string
	watch atomic.Pointer[keyWatch]
}

func (s *keyWatchSpec) Source() string { return "keys" }
func (s *keyWatchSpec) Key() string    { return "key db=" + strconv.Itoa(s.k.DB) + " key=" + s.key }

func (s *keyWatchSpec) Describe() map[string]any {
	return map[string]any{"stream": "keys", "db": s.k.DB, "keys": []string{s.key}}
}

// Heal is the key's latest state, as a "snapshot" event.
func (s *keyWatchSpec) Heal() (streams.Event, bool) {
	if w := s.watch.Load(); w != nil {
		return w.heal()
	}
	return streams.Event{}, false
}

// Open registers the watch for invalidations, subscribes to the key's
// keyspace channel, reads the key (which, in OPTIN mode, is what asks Redis
// to track it) and then turns every invalidation into a read and an event.
func (s *keyWatchSpec) Open(ctx context.Context) rxgo.Observable {
	k := s.k
	w := &keyWatch{key: s.key, wake: make(chan struct{}, 1), noted: make(chan struct{}, 1),
		subscribed: make(chan struct{})}
	s.watch.Store(w)
	k.Invalidations.add(w)
	target := Target{Name: "__keyspace@" + strconv.Itoa(k.DB) + "__:" + s.key}
	if k.Notify != nil {
		target.Resync = k.Notify.Ensure
	}
	var once sync.Once
	onState := func(kind streams.Kind, _ string) {
		if kind == streams.Ready {
			once.Do(func() { close(w.subscribed) })
			return
		}
		// Resubscribed (a reconnect, a topology change): the keyspace events
		// missed only explain deletions, and the value is tracked apart (a
		// lost tracking connection is a nil invalidation), so a re-read that
		// sends only what changed is enough.
		w.poke(false)
	}
	var leave func()
	if k.Cluster != nil {
		k.follow()
		leave = k.Cluster.Join(target, &NodeListener{
			OnMessage: func(_ string, m rueidis.PubSubMessage) { w.noteEvent(m.Message) },
			OnState:   onState,
		})
	} else {
		leave = k.Upstreams.Join(target, &Listener{
			OnMessage: func(m rueidis.PubSubMessage) { w.noteEvent(m.Message) },
			OnState:   onState,
		})
	}
	out := make(chan rxgo.Item)
	go func() {
		defer close(out)
		defer leave()
		defer k.Invalidations.remove(w)
		w.run(ctx, k, out)
	}()
	return rxgo.FromChannel(out)
}

// Recheck re-reads the watched keys affected selects (every one when nil)
// and sends update or delete where the value differs from what watchers
// last got, nothing where it does not; session watches are re-read too.
//
// A Redis Cluster needs it after a slot changes owner: a key read while
// its slot migrates is answered after an ASK redirection, and rueidis sends
// CLIENT CACHING YES before ASKING, which Redis applies to ASKING alone, so
// that read is not tracked and no invalidation would ever come from the new
// owner. A read after the move follows MOVED and is tracked again.
func (k *KeyWatches) Recheck(affected func(key string) bool) {
	t := k.Invalidations
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, ws := range t.watches {
		if affected != nil && !affected(key) {
			continue
		}
		for w := range ws {
			w.poke(false) // never blocks: see Invalidations
		}
	}
}

// follow rechecks, on every topology change, the keys whose slot changed
// owner. The Topology calls it on its scanning goroutine; Recheck only
// pokes, so it never blocks that.
func (k *KeyWatches) follow() {
	k.following.Do(func() {
		k.Cluster.Topology.Watch(func(ch Change) {
			k.Recheck(func(key string) bool {
				slot := KeySlot(key)
				return ch.Old.Owner(slot) != ch.New.Owner(slot)
			})
		})
	})
}

// keyWatch is the one upstream of a key: its last state and the flags that
// invalidations and keyspace events leave for its read loop.
type keyWatch struct {
	key        string
	wake       chan struct{} // one slot: pokes coalesce
	noted      chan struct{} // one slot: a keyspace event arrived
	subscribed chan struct{} // closed once the keyspace channel is live

	mu        sync.Mutex
	resync    bool   // the next read is a snapshot for everyone
	lastEvent string // the latest keyspace event, for the delete reason
	state     streams.KeyState
}

// poke asks the read loop for a read, without ever blocking.
func (w *keyWatch) poke(resync bool) {
	if resync {
		w.mu.Lock()
		w.resync = true
		w.mu.Unlock()
	}
	select {
	case w.wake <- struct{}{}:
	default: // a read is already due; it will see the latest value
	}
}

func (w *keyWatch) noteEvent(name string) {
	w.mu.Lock()
	w.lastEvent = name
	w.mu.Unlock()
	select {
	case w.noted <- struct{}{}:
	default:
	}
}

// reasonWait bounds the wait for the keyspace event that explains a
// deletion. Redis sent it before the reply of the read that found the key
// gone, on the same connection, but rueidis hands pub/sub messages to their
// callback through a channel and another goroutine, so it may be a moment
// behind; it only runs out when notifications are off.
const reasonWait = 250 * time.Millisecond

// awaitDeletion waits until the latest keyspace event is one that removes
// the key, or reasonWait has passed.
func (w *keyWatch) awaitDeletion(ctx context.Context) {
	timer := time.NewTimer(reasonWait)
	defer timer.Stop()
	for {
		w.mu.Lock()
		e := w.lastEvent
		w.mu.Unlock()
		if removes(e) {
			return
		}
		select {
		case <-w.noted:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// heal is the state as a "snapshot" for one new subscriber. It is encoded
// once per state, except for a key with a TTL, whose ttl_ms must be counted
// down to now.
func (w *keyWatch) heal() (streams.Event, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state.Type == "" {
		return streams.Event{}, false // not read yet
	}
	st := w.state
	if st.ExpireAt != 0 {
		st.TTLms = max(st.ExpireAt-time.Now().UnixMilli(), 0)
	}
	return streams.Event{Name: "snapshot", Key: w.key, Data: st}, true
}

// run reads the key whenever it is poked and emits what changed. It ends,
// completing the Observable, when ctx does.
func (w *keyWatch) run(ctx context.Context, k *KeyWatches, out chan<- rxgo.Item) {
	select {
	case <-w.subscribed:
	case <-ctx.Done():
		return
	}
	st, ok := w.read(ctx, k)
	if !ok {
		return
	}
	w.mu.Lock()
	w.resync, w.lastEvent = false, "" // that read was a snapshot already
	w.mu.Unlock()
	w.set(st)
	if !send(ctx, out, streams.Event{Kind: streams.Ready}) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		resync := w.resync
		w.resync = false
		w.mu.Unlock()
		st, ok := w.read(ctx, k)
		if !ok {
			return
		}
		w.mu.Lock()
		prev := w.state
		w.mu.Unlock()
		if !st.Exists && prev.Exists && !resync {
			w.awaitDeletion(ctx)
		}
		w.mu.Lock()
		event := w.lastEvent
		w.lastEvent = ""
		w.mu.Unlock()
		ev, publish := change(prev, st, resync, event)
		w.set(st) // before the event: a subscriber healed meanwhile gets it twice, never not at all
		if publish && !send(ctx, out, ev) {
			return
		}
	}
}

func (w *keyWatch) set(st streams.KeyState) {
	w.mu.Lock()
	w.state = st
	w.mu.Unlock()
}

// read retries until Redis answers or ctx ends: a watch outlives outages,
// and the invalidation that follows a reconnect asks for a snapshot anyway.
func (w *keyWatch) read(ctx context.Context, k *KeyWatches) (streams.KeyState, bool) {
	var wait streams.Backoff
	for {
		st, err := k.Values.Read(ctx, w.key)
		if err == nil {
			return st, true
		}
		if ctx.Err() != nil {
			return st, false
		}
		k.logger().Warn("reading watched key failed; retrying", "key", w.key, "err", err)
		if !wait.Wait(ctx) {
			return st, false
		}
	}
}

func (k *KeyWatches) logger() *slog.Logger {
	if k.Logger != nil {
		return k.Logger
	}
	return slog.Default()
}
