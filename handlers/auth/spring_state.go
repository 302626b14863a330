package auth

import (
	"context"
	"errors"
	"sync"
	"time"
)

// reasonBadPrincipal refuses a session whose principal cannot be used.
const reasonBadPrincipal = "session principal unusable"

// Fields of a Spring Session hash (RedisSessionMapper).
const (
	lastAccessedField = "lastAccessedTime"
	maxInactiveField  = "maxInactiveInterval"
)

// sessionState is what a session hash says.
type sessionState struct {
	principal    string
	hasPrincipal bool
	// expires is when the session expires unless used again: by Spring's
	// own rule (lastAccessedTime + maxInactiveInterval) when the hash says,
	// else the hash's TTL; zero when never.
	expires time.Time
	// byRule says expires comes from Spring's rule, which then decides.
	byRule bool
	// invalidated is Spring's mark of a session deleted (logged out) by the
	// indexed repository: maxInactiveInterval 0, the hash left to expire
	// five minutes later.
	invalidated bool
}

// endReason says whether Spring considers the session over, and why
// ("" while valid). Spring's RedisIndexedSessionRepository keeps a hash
// five minutes past its session's end: its existence alone is not enough.
func (st sessionState) endReason(now time.Time) string {
	switch {
	case st.invalidated:
		return ReasonSessionEnded
	case st.byRule && !now.Before(st.expires):
		return ReasonSessionExpired
	}
	return ""
}

// read reads a session through the store's cache: an *InvalidError when
// it does not exist or its principal is unusable, a plain error when Redis
// could not be read.
func (s *SpringSession) read(ctx context.Context, key string) (sessionState, error) {
	var st sessionState
	exists, principal, expireAt, err := s.store.ReadSession(ctx, key, principalField)
	if err != nil {
		return st, err
	}
	if !exists {
		return st, invalid("session not found")
	}
	if st.principal, st.hasPrincipal, err = decodePrincipal(principal); err != nil {
		// A principal that cannot be used safely refuses the session:
		// dropping only its {principal} templates would hide the problem.
		s.logger.Warn("spring-session: refused a session whose principal is unusable", "err", err)
		return st, invalid(reasonBadPrincipal)
	}
	st.expires = expireAt
	var raw [2][]byte
	for i, field := range []string{lastAccessedField, maxInactiveField} {
		if _, raw[i], _, err = s.store.ReadSession(ctx, key, field); err != nil {
			return st, err
		}
	}
	last, okLast := springNumber(raw[0])
	maxInactive, okMax := springNumber(raw[1])
	switch {
	case !okMax: // not a hash Spring wrote in full: its TTL alone decides
	case maxInactive < 0: // never expires by time
		st.expires = time.Time{}
	case maxInactive == 0:
		st.invalidated = true
	case okLast && maxInactive < 1<<31:
		st.expires, st.byRule = time.UnixMilli(last).Add(time.Duration(maxInactive)*time.Second), true
	}
	return st, nil
}

// SessionChanges may be implemented by a SessionStore to also say when a
// watched session hash changed (Spring's logout rewrites it rather than
// deleting it); the identity then checks Spring's rule again.
type SessionChanges interface {
	WatchSessionChanges(key string, changed func(), ended func(expired bool)) (stop func())
}

// sessionEnding ends an identity when its session ends: the hash deleted
// or expired (the store says), or Spring's rule (checked when the hash
// changes, and at the time the rule says it expires).
type sessionEnding struct {
	s   *SpringSession
	key string
	// principal is the one the scopes were filled with: another one
	// (the hash rewritten for someone else) ends the identity.
	principal string
}

func (e *sessionEnding) Watch(ended func(reason string)) (stop func()) {
	w := &sessionWatch{sessionEnding: e, ended: ended}
	storeEnded := func(expired bool) {
		if expired {
			w.end(ReasonSessionExpired)
		} else {
			w.end(ReasonSessionEnded)
		}
	}
	var stopStore func()
	if sc, ok := e.s.store.(SessionChanges); ok {
		stopStore = sc.WatchSessionChanges(e.key, w.check, storeEnded)
	} else {
		stopStore = e.s.store.WatchSession(e.key, storeEnded)
		w.mu.Lock()
		w.timer = time.AfterFunc(0, w.check)
		w.mu.Unlock()
	}
	return func() {
		w.mu.Lock()
		w.stopped = true
		if w.timer != nil {
			w.timer.Stop()
		}
		w.mu.Unlock()
		stopStore()
	}
}

// sessionWatch is one Watch of a session's identity.
type sessionWatch struct {
	*sessionEnding
	ended   func(reason string)
	mu      sync.Mutex
	timer   *time.Timer // at the expiry Spring's rule says
	stopped bool
}

// checkTimeout bounds one re-check (cached: normally no Redis round trip).
const checkTimeout = 5 * time.Second

// expiryGrace is how long a live stream outlasts the expiry Spring's rule
// says (new requests are refused at once): the keyspace event of that
// expiry (the indexed repository's expires key) reaches the page first.
const expiryGrace = time.Second

// check applies Spring's rule now and arms a timer for when it says the
// session expires. A read that fails changes nothing: the store re-reads
// when Redis is back.
func (w *sessionWatch) check() {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	st, err := w.s.read(ctx, w.key)
	var ie *InvalidError
	if errors.As(err, &ie) && ie.Reason == reasonBadPrincipal {
		w.end(ReasonSessionEnded)
		return
	}
	if err != nil {
		return // gone: the store tells (deleted or expired); Redis trouble: kept
	}
	if st.principal != w.principal {
		w.end(ReasonSessionEnded)
		return
	}
	if reason := st.endReason(time.Now()); reason != "" {
		w.end(reason)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	if !w.stopped && st.byRule {
		w.timer = time.AfterFunc(time.Until(st.expires)+expiryGrace, w.check)
	}
}

func (w *sessionWatch) end(reason string) {
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if !stopped {
		w.ended(reason)
	}
}
