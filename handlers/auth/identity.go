package auth

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Modes, as --auth names them.
const (
	ModeNone          = "none"
	ModeJWT           = "jwt"
	ModeSpringSession = "spring-session"
)

// Reasons an identity ends, sent as the "reason" of an auth-expired event.
const (
	ReasonTokenExpired   = "token-expired"
	ReasonSessionEnded   = "session-ended"
	ReasonSessionExpired = "session-expired"
)

// Request is what authentication reads from an HTTP request.
type Request interface {
	Header(name string) string
	Cookie(name string) string
	// Query is a query parameter ("" when absent).
	Query(name string) string
}

// Authenticator finds the identity of a request.
type Authenticator interface {
	// Mode is the --auth value it implements.
	Mode() string
	// Authenticate returns the request's identity. Errors: ErrNoCredentials
	// and *InvalidError are 401; any other error means the identity could
	// not be checked now (Redis unreachable): 503.
	Authenticate(ctx context.Context, r Request) (*Identity, error)
}

// ErrNoCredentials is a request that carries no token or session cookie.
var ErrNoCredentials = errors.New("no credentials")

// InvalidError is a request whose credentials were refused: a bad
// signature, an expired token, a session that does not exist.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

func invalid(reason string) error { return &InvalidError{Reason: reason} }

// IsUnauthenticated reports whether err should be answered with 401.
func IsUnauthenticated(err error) bool {
	var ie *InvalidError
	return errors.Is(err, ErrNoCredentials) || errors.As(err, &ie)
}

// Identity is who a request comes from and what it may use.
type Identity struct {
	// Mode is the --auth mode that found it.
	Mode string
	// Subject is the token's "sub", or the session's principal ("" when
	// unknown). It is shown to the identity itself, never logged with data.
	Subject string
	// Session is the Spring Session id ("" in other modes).
	Session string
	Scopes  Scopes
	// Expires is when the identity stops being valid (zero: never by time).
	// A stream ends at this moment with an auth-expired event.
	Expires time.Time
	// SessionExpires is when a Spring session expires unless it is used
	// again (zero otherwise); shown to the user, it ends nothing by itself.
	SessionExpires time.Time
	// ending, when set, says when the identity ends before Expires (a
	// session deleted or expired in Redis).
	ending Ending
}

// Ending is told when an identity ends early.
type Ending interface {
	// Watch calls ended once, with a reason, when the identity ends; stop
	// cancels the watch (ended is then never called).
	Watch(ended func(reason string)) (stop func())
}

// Anyone is the identity of every request under --auth none: everything
// (that --expose allows), in any database --expose-db lists.
var Anyone = &Identity{Mode: ModeNone, Scopes: Scopes{
	Keys: All, Channels: All, Streams: All, Publish: All, AnyDB: true,
}}

// Watch calls ended once, with the reason, when the identity ends: at
// Expires, or earlier if its session ends. stop cancels it; it is safe to
// call stop after ended has run, and more than once.
func (id *Identity) Watch(ended func(reason string)) (stop func()) {
	if id.Expires.IsZero() && id.ending == nil {
		return func() {}
	}
	var once sync.Once
	fire := func(reason string) { once.Do(func() { ended(reason) }) }
	var timer *time.Timer
	if !id.Expires.IsZero() {
		timer = time.AfterFunc(time.Until(id.Expires), func() { fire(ReasonTokenExpired) })
	}
	stopEnding := func() {}
	if id.ending != nil {
		stopEnding = id.ending.Watch(fire)
	}
	return func() {
		if timer != nil {
			timer.Stop()
		}
		stopEnding()
	}
}

// WithEnding returns a copy of id that also ends when e says so.
func (id *Identity) WithEnding(e Ending) *Identity {
	c := *id
	c.ending = e
	return &c
}
