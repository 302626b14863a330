package redis

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// Sessions reads Spring Session hashes through the client-side cache and
// tells when one goes (handlers/auth.SessionStore). A session checked on
// every request costs Redis one read per change of its hash, not one per
// request; a watched session is re-read when Redis invalidates it.
type Sessions struct {
	// Client is the caching client; Invalidations its router.
	Client        rueidis.Client
	Invalidations *Invalidations
	Logger        *slog.Logger

	mu      sync.Mutex
	watches map[string]*sessionWatch
	running sync.WaitGroup

	knownMu sync.Mutex
	known   map[string]struct{} // sessions found to exist, read through the cache
}

// maxKnown bounds the sessions remembered as existing; past it the set
// starts again (each session then costs one more uncached read).
const maxKnown = 100_000

func (s *Sessions) isKnown(key string) bool {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	_, ok := s.known[key]
	return ok
}

func (s *Sessions) remember(key string) {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	if s.known == nil || len(s.known) >= maxKnown {
		s.known = make(map[string]struct{})
	}
	s.known[key] = struct{}{}
}

func (s *Sessions) forget(key string) {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	delete(s.known, key)
}

// expirySlack tells an expiry from a deletion: a key gone within this of
// its known expiry time expired (the known time is the reply's arrival
// plus PTTL, a little later than Redis's own).
const expirySlack = 500 * time.Millisecond

// ReadSession reads field of the hash at key, and whether the hash exists
// (a key of another type is no session), with one cached TYPE and HGET.
func (s *Sessions) ReadSession(ctx context.Context, key, field string) (exists bool, value []byte, expireAt time.Time, err error) {
	b := s.Client.B()
	if !s.isKnown(key) {
		// A session id not seen before is first read without the cache:
		// Redis tracks every key read through it, for as long as the key
		// does not change, and a hostile client could make up millions.
		t, err := s.Client.Do(ctx, b.Type().Key(key).Build()).ToString()
		if err != nil || t != "hash" {
			return false, nil, time.Time{}, err
		}
		s.remember(key)
	}
	res := s.Client.DoMultiCache(ctx,
		rueidis.CT(b.Type().Key(key).Cache(), cacheFor),
		rueidis.CT(b.Hget().Key(key).Field(field).Cache(), cacheFor))
	exists, expireAt, err = sessionType(res[0])
	if err != nil || !exists {
		if err == nil {
			s.forget(key)
		}
		return false, nil, time.Time{}, err
	}
	value, err = res[1].AsBytes()
	if rueidis.IsRedisNil(err) {
		return true, nil, expireAt, nil
	}
	if isWrongType(err) { // replaced by another type between the two reads
		return false, nil, time.Time{}, nil
	}
	if err != nil {
		return false, nil, time.Time{}, err
	}
	return true, value, expireAt, nil
}

// sessionType reads a cached TYPE reply: a hash, and its expiry.
func sessionType(typ rueidis.RedisResult) (exists bool, expireAt time.Time, err error) {
	t, err := typ.ToString()
	if err != nil || t != "hash" {
		return false, time.Time{}, err
	}
	if pxat := typ.CachePXAT(); pxat > 0 && pxat < time.Now().Add(neverExpires).UnixMilli() {
		expireAt = time.UnixMilli(pxat)
	}
	return true, expireAt, nil
}

// WatchSession calls ended once when the hash at key goes: expired true
// when it went at its expiry time, false when it was deleted (or replaced
// by another type). Every watcher of one key shares one read loop.
func (s *Sessions) WatchSession(key string, ended func(expired bool)) (stop func()) {
	return s.WatchSessionChanges(key, nil, ended)
}

// WatchSessionChanges is WatchSession that also calls changed (when not
// nil) after every read that finds the hash still there: at the start,
// and after each change Redis reports (Spring's logout rewrites the hash
// instead of deleting it). changed runs on the read loop: it may read the
// session, it must not wait for other watchers.
func (s *Sessions) WatchSessionChanges(key string, changed func(), ended func(expired bool)) (stop func()) {
	e := &sessionWatcher{changed: changed, ended: ended}
	s.mu.Lock()
	w := s.watches[key]
	if w == nil {
		ctx, cancel := context.WithCancel(context.Background())
		w = &sessionWatch{s: s, key: key, ctx: ctx, cancel: cancel,
			watchers: make(map[*sessionWatcher]struct{})}
		if s.watches == nil {
			s.watches = make(map[string]*sessionWatch)
		}
		s.watches[key] = w
		// Routed before the first read, so no invalidation is missed.
		s.Invalidations.watch(key, w)
		w.poke(false) // it may have gone since it was authenticated
	} else if changed != nil {
		w.poke(false) // a read for the newcomer's first changed (from the cache)
	}
	w.watchers[e] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	// stop never waits for the read loop: it may run inside ended.
	return func() { once.Do(func() { s.release(w, e) }) }
}

// Watched returns how many sessions are watched.
func (s *Sessions) Watched() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches)
}

// Close stops every watch (telling no one) and waits for the read loops.
func (s *Sessions) Close() {
	s.mu.Lock()
	for _, w := range s.watches {
		s.drop(w)
	}
	s.mu.Unlock()
	s.running.Wait()
}

// sessionWatch is one watched session. It owns no goroutine while nothing
// happens (with a stream per session, one each would cost more than the
// stream): a poke starts a read, and pokes during it make it read again.
type sessionWatch struct {
	s      *Sessions
	key    string
	ctx    context.Context
	cancel context.CancelFunc
	// watchers are guarded by Sessions.mu.
	watchers map[*sessionWatcher]struct{}

	mu       sync.Mutex
	reading  bool      // a read is running
	again    bool      // poked during it: read once more
	stopped  bool      // dropped: no read starts any more
	expireAt time.Time // the last read's expiry, to tell an expiry from a deletion
}

type sessionWatcher struct {
	changed func()
	ended   func(expired bool)
}

// poke asks for a re-read, never blocking the connection's reader: a burst
// of pokes is one read, or two when one comes during it.
func (w *sessionWatch) poke(bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if w.reading {
		w.again = true
		return
	}
	w.reading = true
	w.s.running.Add(1) // before stopped can be set: Close waits for it
	go w.s.read(w)
}

func (s *Sessions) release(w *sessionWatch, e *sessionWatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(w.watchers, e)
	if len(w.watchers) == 0 {
		s.drop(w)
	}
}

// drop removes w, if it is still the key's watch; s.mu held.
func (s *Sessions) drop(w *sessionWatch) {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	if s.watches[w.key] == w {
		delete(s.watches, w.key)
		s.Invalidations.unwatch(w.key, w)
	}
	w.cancel()
}

// read re-reads the session until no poke came meanwhile, or it is gone,
// or no one watches it. A read that fails (Redis unreachable) is retried:
// tracking starts again with the read that succeeds.
func (s *Sessions) read(w *sessionWatch) {
	defer s.running.Done()
	retry := streams.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		w.mu.Lock()
		w.again = false
		w.mu.Unlock()
		res := s.Client.DoCache(w.ctx, s.Client.B().Type().Key(w.key).Cache(), cacheFor)
		exists, at, err := sessionType(res)
		if w.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logger().Warn("re-reading a watched session failed; retrying", "err", err)
			if !retry.Wait(w.ctx) {
				return
			}
			continue
		}
		retry.Reset()
		if !exists {
			expireAt := w.expireAt
			s.end(w, !expireAt.IsZero() && time.Now().After(expireAt.Add(-expirySlack)))
			return
		}
		w.expireAt = at // only the one running read touches it
		for _, e := range s.watchersOf(w) {
			if e.changed != nil {
				e.changed()
			}
		}
		w.mu.Lock()
		if !w.again {
			w.reading = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// watchersOf copies w's watchers, to call them without the lock.
func (s *Sessions) watchersOf(w *sessionWatch) []*sessionWatcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := make([]*sessionWatcher, 0, len(w.watchers))
	for e := range w.watchers {
		es = append(es, e)
	}
	return es
}

// end tells every watcher of w, once, and removes w.
func (s *Sessions) end(w *sessionWatch, expired bool) {
	s.mu.Lock()
	es := make([]*sessionWatcher, 0, len(w.watchers))
	for e := range w.watchers {
		es = append(es, e)
	}
	clear(w.watchers)
	s.drop(w)
	s.mu.Unlock()
	for _, e := range es {
		e.ended(expired)
	}
}

func (s *Sessions) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
