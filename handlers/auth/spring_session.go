package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// SessionStore reads Spring Session hashes and says when they go. It is
// implemented on the client-side caching Redis client (streams/redis).
type SessionStore interface {
	// ReadSession reads one field of the hash at key through the
	// client-side cache (no round trip after the first read, until Redis
	// invalidates it): whether the key exists, the raw bytes of field (nil
	// when absent) and when the key expires (zero: no TTL).
	ReadSession(ctx context.Context, key, field string) (exists bool, value []byte, expireAt time.Time, err error)
	// WatchSession calls ended once when key is deleted (expired false) or
	// expires (true); stop cancels.
	WatchSession(key string, ended func(expired bool)) (stop func())
}

// SpringOptions configure --auth spring-session.
type SpringOptions struct {
	// Namespace is spring.session.redis.namespace; Cookie the session
	// cookie's name.
	Namespace, Cookie string
	// Templates of each scope, with {namespace}, {session}, {principal}.
	Keys, Channels, Streams, Publish []string
	Store                            SessionStore
	Logger                           *slog.Logger
}

// SpringSession authenticates requests by the Spring Session cookie the
// browser already holds: a session is valid while its hash exists in Redis
// and Spring's own rule says so (spring_state.go),
// and its scopes are the templates filled with its id and principal.
type SpringSession struct {
	namespace, cookie            string
	keys, channels, streams, pub templates
	store                        SessionStore
	logger                       *slog.Logger
}

// principalField is the hash field where Spring Session keeps the
// principal's name (FindByIndexNameSessionRepository.PRINCIPAL_NAME_INDEX_NAME).
const principalField = "sessionAttr:org.springframework.session.FindByIndexNameSessionRepository.PRINCIPAL_NAME_INDEX_NAME"

// Bounds on hostile input: the cookie, the id in it, the principal.
const (
	maxCookieLength    = 512
	maxSessionIDLength = 256
	maxPrincipalLength = 1024
)

// NewSpringSession checks the options; templates must make valid
// selectors.
func NewSpringSession(o SpringOptions) (*SpringSession, error) {
	if o.Store == nil {
		return nil, errors.New("spring-session: no session store (it needs Redis 6+ over RESP3 for client-side caching)")
	}
	if o.Namespace == "" || strings.ContainsAny(o.Namespace, `*?[\{}`) || hasControl(o.Namespace) {
		return nil, fmt.Errorf("spring-session namespace %q: empty, or holds a glob character, a brace or a control character", o.Namespace)
	}
	if o.Cookie == "" {
		return nil, errors.New("spring-session: empty cookie name")
	}
	s := &SpringSession{namespace: o.Namespace, cookie: o.Cookie, store: o.Store, logger: o.Logger}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	var err error
	for _, t := range []struct {
		dst  *templates
		what string
		src  []string
	}{
		{&s.keys, "spring-session-keys", o.Keys},
		{&s.channels, "spring-session-channels", o.Channels},
		{&s.streams, "spring-session-streams", o.Streams},
		{&s.pub, "spring-session-publish", o.Publish},
	} {
		if *t.dst, err = parseTemplates(t.what, t.src); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Mode is "spring-session".
func (s *SpringSession) Mode() string { return ModeSpringSession }

// Cookie is the name of the cookie it reads.
func (s *SpringSession) Cookie() string { return s.cookie }

// Authenticate finds the session of the request's cookie. No cookie:
// ErrNoCredentials; a malformed cookie, a session that does not exist or
// an unusable principal: 401; Redis unreachable: a plain error (503).
func (s *SpringSession) Authenticate(ctx context.Context, r Request) (*Identity, error) {
	raw := r.Cookie(s.cookie)
	if raw == "" {
		return nil, ErrNoCredentials
	}
	id, ok := sessionID(raw)
	if !ok {
		return nil, invalid("malformed session cookie")
	}
	key := s.namespace + ":sessions:" + id
	st, err := s.read(ctx, key)
	if err != nil {
		if IsUnauthenticated(err) {
			return nil, err
		}
		return nil, fmt.Errorf("reading the session: %w", err)
	}
	if reason := st.endReason(time.Now()); reason != "" {
		return nil, invalid(strings.ReplaceAll(reason, "-", " ")) // "session expired"
	}
	fill := func(ts templates) Selectors { return ts.fill(s.namespace, id, st.principal, st.hasPrincipal) }
	ident := &Identity{
		Mode: ModeSpringSession, Subject: st.principal, Session: id, SessionExpires: st.expires,
		Scopes: Scopes{Keys: fill(s.keys), Channels: fill(s.channels), Streams: fill(s.streams), Publish: fill(s.pub)},
	}
	return ident.WithEnding(&sessionEnding{s: s, key: key, principal: st.principal}), nil
}

// sessionID reads the id from the cookie: the base64 DefaultCookieSerializer
// writes (standard or URL-safe, padded or not), else the value itself (a
// serializer with base64 off). The id becomes part of key names and
// selectors: printable ASCII only, no glob character, bounded.
func sessionID(cookie string) (string, bool) {
	if len(cookie) > maxCookieLength {
		return "", false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(cookie); err == nil && validSessionID(string(b)) {
			return string(b), true
		}
	}
	if validSessionID(cookie) {
		return cookie, true
	}
	return "", false
}

func validSessionID(id string) bool {
	if id == "" || len(id) > maxSessionIDLength || strings.ContainsAny(id, `*?[\`) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// decodePrincipal reads the principal attribute as Spring stores it:
// JDK-serialized (the default) or JSON (GenericJackson2JsonRedisSerializer).
// Absent: has is false. It is substituted into templates, so anything that
// could widen one, or is not text, is an error.
func decodePrincipal(v []byte) (principal string, has bool, err error) {
	if v == nil {
		return "", false, nil
	}
	if isJavaSerialized(v) {
		principal, err = javaString(v)
	} else if len(v) > maxPrincipalLength+2 {
		err = errors.New("principal too long")
	} else if err = json.Unmarshal(v, &principal); err != nil {
		err = errors.New("principal is neither a JDK-serialized nor a JSON string")
	}
	switch {
	case err != nil:
		return "", false, err
	case principal == "":
		return "", false, errors.New("empty principal")
	case len(principal) > maxPrincipalLength:
		return "", false, errors.New("principal too long")
	case strings.ContainsAny(principal, `*?[\`) || hasControl(principal):
		return "", false, errors.New("principal holds a glob or control character")
	}
	return principal, true, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}
