package redis

import (
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// Invalidations routes Redis's client-side caching invalidations to the key
// watches and session watches (sessions.go) that care. rueidis calls
// OnInvalidations on the caching connection's reader goroutine, so it only
// pokes: each watch has a one-slot wake-up channel, a send that finds it
// full is dropped, and a burst of changes to one key becomes one read of
// its latest value.
type Invalidations struct {
	// Cluster says the caching client is a Redis Cluster's: a nil
	// invalidation is then one node's (its connection was lost, or it was
	// flushed), so watches re-read and send only what changed instead of a
	// snapshot of every key of every node.
	Cluster bool

	received atomic.Int64

	mu      sync.Mutex
	watches map[string]map[poker]struct{}
}

// poker is told that its key changed (resync: everything may have).
type poker interface{ poke(resync bool) }

// OnInvalidations is the caching client's rueidis OnInvalidations callback.
// nil means everything is invalid: FLUSHALL/FLUSHDB, or the connection was
// lost (rueidis has then flushed its cache and Redis forgot what it tracked),
// so every watch re-reads and sends its clients a fresh snapshot.
func (t *Invalidations) OnInvalidations(keys []rueidis.RedisMessage) {
	defer t.received.Add(max(int64(len(keys)), 1)) // after the pokes: tests wait on it
	t.mu.Lock()
	defer t.mu.Unlock()
	if keys == nil {
		for _, ws := range t.watches {
			for w := range ws {
				w.poke(!t.Cluster)
			}
		}
		return
	}
	for _, m := range keys {
		k, err := m.ToString()
		if err != nil {
			continue
		}
		for w := range t.watches[k] {
			w.poke(false)
		}
	}
}

// Received returns how many invalidations arrived (keys, and one for each
// "everything is invalid").
func (t *Invalidations) Received() int64 { return t.received.Load() }

// Watched returns how many keys are watched.
func (t *Invalidations) Watched() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.watches)
}

func (t *Invalidations) add(w *keyWatch)    { t.watch(w.key, w) }
func (t *Invalidations) remove(w *keyWatch) { t.unwatch(w.key, w) }

func (t *Invalidations) watch(key string, p poker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watches == nil {
		t.watches = make(map[string]map[poker]struct{})
	}
	ws := t.watches[key]
	if ws == nil {
		ws = make(map[poker]struct{}, 1)
		t.watches[key] = ws
	}
	ws[p] = struct{}{}
}

func (t *Invalidations) unwatch(key string, p poker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ws := t.watches[key]; ws != nil {
		delete(ws, p)
		if len(ws) == 0 {
			delete(t.watches, key)
		}
	}
}
