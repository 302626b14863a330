package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keyflux/keyflux/handlers/auth"
	"github.com/keyflux/keyflux/streams/redis"
	"github.com/keyflux/keyflux/streams/redis/redisserver"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// cookies is a Request carrying only cookies.
type cookies map[string]string

func (c cookies) Header(string) string      { return "" }
func (c cookies) Cookie(name string) string { return c[name] }
func (c cookies) Query(string) string       { return "" }

func sessionCookie(id string) cookies {
	return cookies{"SESSION": base64.StdEncoding.EncodeToString([]byte(id))}
}

// springRedis is a real redis-server, a test client, and the store on the
// same caching client Keyflux uses.
func springRedis(t *testing.T) (*redisserver.Server, rueidis.Client, *redis.Sessions) {
	t.Helper()
	srv, c := testkit.Redis(t)
	conn, err := redis.Open(context.Background(), redis.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if conn.Sessions == nil {
		t.Fatal("no session store on a Redis that can cache")
	}
	return srv, c, conn.Sessions
}

func newSpring(t *testing.T, store auth.SessionStore) *auth.SpringSession {
	t.Helper()
	s, err := auth.NewSpringSession(auth.SpringOptions{
		Namespace: "spring:session", Cookie: "SESSION", Store: store,
		Keys:     []string{"{namespace}:sessions:expires:{session}", "{namespace}:sessions:{session}", "user:{principal}:*"},
		Channels: []string{"chat:{session}"},
		Publish:  []string{"to:{principal}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSpringSessionIdentity(t *testing.T) {
	_, c, store := springRedis(t)
	s := newSpring(t, store)
	ctx := context.Background()
	id := "9f2c6d1e-1c1b-4a53-8d0e-3f1e2a4b5c6d"
	testkit.WriteSpringSession(t, c, "spring:session", id, "alice", 30*time.Minute)

	got, err := s.Authenticate(ctx, sessionCookie(id))
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != auth.ModeSpringSession || got.Subject != "alice" || got.Session != id || !got.Expires.IsZero() {
		t.Fatalf("identity %+v", got)
	}
	wantKeys := auth.Selectors{"spring:session:sessions:expires:" + id, "spring:session:sessions:" + id, "user:alice:*"}
	if !slices.Equal(got.Scopes.Keys, wantKeys) || !slices.Equal(got.Scopes.Channels, auth.Selectors{"chat:" + id}) ||
		!slices.Equal(got.Scopes.Publish, auth.Selectors{"to:alice"}) || len(got.Scopes.Streams) != 0 || len(got.Scopes.DB) != 0 || got.Scopes.AnyDB {
		t.Fatalf("scopes %+v", got.Scopes)
	}
	if !got.Scopes.Keys.AllowsGlob("user:alice:*") || got.Scopes.Keys.AllowsGlob("user:*") ||
		got.Scopes.Keys.AllowsName("spring:session:sessions:other") {
		t.Fatal("the scopes allow more than the session's own keys")
	}
	// Spring's own expiry, not the hash's TTL (5 minutes later).
	if left := time.Until(got.SessionExpires); left < 29*time.Minute || left > 30*time.Minute {
		t.Fatalf("session expires in %v", left)
	}

	// Checked again, on every request: no Redis command at all.
	if types := testkit.CommandCalls(t, c, "type"); types > 3 {
		t.Fatalf("the first authentication read TYPE %d times", types)
	}
	types, hgets := testkit.CommandCalls(t, c, "type"), testkit.CommandCalls(t, c, "hget")
	total := testkit.InfoStat(t, c, "stats", "total_commands_processed")
	for range 10 {
		if again, err := s.Authenticate(ctx, sessionCookie(id)); err != nil || again.Subject != "alice" {
			t.Fatalf("again: %+v, %v", again, err)
		}
	}
	if testkit.CommandCalls(t, c, "type") != types || testkit.CommandCalls(t, c, "hget") != hgets {
		t.Fatal("a repeated authentication read Redis")
	}
	// Only the INFO calls themselves (2 above, this one) ran since.
	if now := testkit.InfoStat(t, c, "stats", "total_commands_processed"); now-total != 3 {
		t.Fatalf("%d commands ran during 10 cached authentications", now-total-3)
	}
}

func TestSpringSessionPrincipalForms(t *testing.T) {
	_, c, store := springRedis(t)
	s := newSpring(t, store)
	ctx := context.Background()
	field := testkit.SpringPrincipalField

	// GenericJackson2JsonRedisSerializer: a JSON string.
	testkit.Do(t, c, "HSET", "spring:session:sessions:json", "creationTime", "1", field, `"bob"`)
	// A URL-safe unpadded cookie, and a plain id, are accepted too.
	for _, ck := range []string{base64.RawURLEncoding.EncodeToString([]byte("json")), "json"} {
		got, err := s.Authenticate(ctx, cookies{"SESSION": ck})
		if err != nil || got.Subject != "bob" || !slices.Contains(got.Scopes.Keys, "user:bob:*") {
			t.Fatalf("cookie %q: %+v, %v", ck, got, err)
		}
	}

	// No principal: templates with {principal} are left out.
	testkit.WriteSpringSession(t, c, "spring:session", "anon", "", time.Minute)
	got, err := s.Authenticate(ctx, sessionCookie("anon"))
	if err != nil || got.Subject != "" || len(got.Scopes.Keys) != 2 || len(got.Scopes.Publish) != 0 {
		t.Fatalf("anonymous: %+v, %v", got, err)
	}

	// Principals that would widen a template, or are not text, refuse the
	// session.
	for name, v := range map[string]string{
		"glob":       string(testkit.JavaString("a*")),
		"bracket":    `"a[b]"`,
		"backslash":  string(testkit.JavaString(`a\b`)),
		"control":    string(testkit.JavaString("a\nb")),
		"NUL":        string(testkit.JavaString("a\x00b")),
		"a Long":     string(testkit.JavaLong(1)),
		"JSON array": `["alice"]`,
		"empty":      `""`,
	} {
		testkit.Do(t, c, "HSET", "spring:session:sessions:bad", field, v)
		if got, err := s.Authenticate(ctx, sessionCookie("bad")); !auth.IsUnauthenticated(err) {
			t.Errorf("%s principal: %+v, %v", name, got, err)
		}
	}
}

func TestSpringSessionRefusals(t *testing.T) {
	srv, c, store := springRedis(t)
	s := newSpring(t, store)
	ctx := context.Background()
	if _, err := s.Authenticate(ctx, cookies{}); !errors.Is(err, auth.ErrNoCredentials) {
		t.Fatalf("no cookie: %v", err)
	}
	long := make([]byte, 600)
	for i := range long {
		long[i] = 'a'
	}
	for _, ck := range []string{
		base64.StdEncoding.EncodeToString([]byte("unknown")),
		base64.StdEncoding.EncodeToString([]byte("a*")), // would be a glob: refused before Redis
		"a*", "a?b", `a\b`, "a[b]", "with space", "\x01", string(long),
	} {
		_, err := s.Authenticate(ctx, cookies{"SESSION": ck})
		var ie *auth.InvalidError
		if !errors.As(err, &ie) {
			t.Errorf("cookie %q: %v, want 401", ck, err)
		}
	}
	// A key of another type at the session's name is no session.
	testkit.Do(t, c, "SET", "spring:session:sessions:str", "x")
	if _, err := s.Authenticate(ctx, sessionCookie("str")); !auth.IsUnauthenticated(err) {
		t.Fatalf("a string key authenticated: %v", err)
	}
	// Redis unreachable: not a 401, the session could not be checked.
	srv.Stop()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s.Authenticate(rctx, sessionCookie("other")); err == nil || auth.IsUnauthenticated(err) {
		t.Fatalf("with Redis down: %v, want a plain error", err)
	}
}

func TestNewSpringSessionRefusesBadTemplates(t *testing.T) {
	store := &redis.Sessions{} // never read: construction fails first
	for _, keys := range [][]string{
		{"user:*:{principal}"}, {"{user}"}, {"a{b"}, {""}, {"a**"}, {"{session}*x"},
	} {
		if _, err := auth.NewSpringSession(auth.SpringOptions{Namespace: "ns", Cookie: "SESSION", Store: store, Keys: keys}); err == nil {
			t.Errorf("keys %q accepted", keys)
		}
	}
	for _, ns := range []string{"", "ns*", "n[s]", "a{b}"} {
		if _, err := auth.NewSpringSession(auth.SpringOptions{Namespace: ns, Cookie: "SESSION", Store: store}); err == nil {
			t.Errorf("namespace %q accepted", ns)
		}
	}
	if _, err := auth.NewSpringSession(auth.SpringOptions{Namespace: "ns", Cookie: "SESSION"}); err == nil {
		t.Error("no store accepted")
	}
}

// ended waits for the identity's end and returns its reason.
func ended(t *testing.T, id *auth.Identity, within time.Duration, act func()) string {
	t.Helper()
	reasons := make(chan string, 2)
	stop := id.Watch(func(r string) { reasons <- r })
	defer stop()
	act()
	select {
	case r := <-reasons:
		return r
	case <-time.After(within):
		t.Fatalf("the identity did not end within %v", within)
		return ""
	}
}

func TestSpringSessionEnds(t *testing.T) {
	_, c, store := springRedis(t)
	s := newSpring(t, store)
	ctx := context.Background()
	auth1 := func(id string) *auth.Identity {
		testkit.WriteSpringSession(t, c, "spring:session", id, "alice", time.Hour)
		got, err := s.Authenticate(ctx, sessionCookie(id))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	deleted := auth1("deleted")
	if r := ended(t, deleted, time.Second, func() { testkit.Do(t, c, "DEL", "spring:session:sessions:deleted") }); r != auth.ReasonSessionEnded {
		t.Fatalf("deleted: %q", r)
	}
	expired := auth1("expired")
	if r := ended(t, expired, time.Second, func() { testkit.Do(t, c, "PEXPIRE", "spring:session:sessions:expired", "50") }); r != auth.ReasonSessionExpired {
		t.Fatalf("expired: %q", r)
	}
	// Touched as Spring does on every request: the stream goes on.
	touched := auth1("touched")
	reasons := make(chan string, 1)
	stop := touched.Watch(func(r string) { reasons <- r })
	for range 20 {
		testkit.Do(t, c, "HSET", "spring:session:sessions:touched", "lastAccessedTime", string(testkit.JavaLong(time.Now().UnixMilli())))
		testkit.Do(t, c, "PEXPIRE", "spring:session:sessions:touched", "3900000")
	}
	testkit.Eventually(t, "the touches re-read", func() bool { return testkit.CommandCalls(t, c, "type") >= 3 })
	select {
	case r := <-reasons:
		t.Fatalf("a touched session ended: %q", r)
	default:
	}
	stop()
	// A session gone between authentication and the watch ends at once.
	gone := auth1("gone")
	testkit.Do(t, c, "DEL", "spring:session:sessions:gone")
	if r := ended(t, gone, time.Second, func() {}); r != auth.ReasonSessionEnded {
		t.Fatalf("gone: %q", r)
	}
	testkit.Eventually(t, "no session watched", func() bool { return store.Watched() == 0 })
}

// Spring's RedisIndexedSessionRepository keeps the hash five minutes past
// the session's end: logout (deleteById) and expiry are read from the hash,
// not from its existence.
func TestSpringSessionEndsBySpringsRule(t *testing.T) {
	_, c, store := springRedis(t)
	s := newSpring(t, store)
	ctx := context.Background()
	const ns = "spring:session"

	// Logout as deleteById does it.
	testkit.WriteSpringSession(t, c, ns, "out", "alice", time.Hour)
	id, err := s.Authenticate(ctx, sessionCookie("out"))
	if err != nil {
		t.Fatal(err)
	}
	r := ended(t, id, time.Second, func() {
		testkit.Do(t, c, "DEL", ns+":sessions:expires:out")
		testkit.Do(t, c, "HSET", ns+":sessions:out", "maxInactiveInterval", string(testkit.JavaInteger(0)))
		testkit.Do(t, c, "PEXPIRE", ns+":sessions:out", "300000")
	})
	if r != auth.ReasonSessionEnded {
		t.Fatalf("logout: %q", r)
	}
	if _, err := s.Authenticate(ctx, sessionCookie("out")); !auth.IsUnauthenticated(err) {
		t.Fatalf("a logged-out session authenticated: %v", err)
	}

	// Expiry by Spring's clock, touched once on the way: it ends a second
	// after the touch (and a second's grace), while the hash still exists.
	testkit.WriteSpringSession(t, c, ns, "idle", "alice", time.Second)
	id, err = s.Authenticate(ctx, sessionCookie("idle"))
	if err != nil {
		t.Fatal(err)
	}
	reasons := make(chan string, 1)
	stop := id.Watch(func(r string) { reasons <- r })
	time.Sleep(500 * time.Millisecond) // the touch must come mid-session
	touched := time.Now()
	hgets := testkit.CommandCalls(t, c, "hget")
	testkit.Do(t, c, "HSET", ns+":sessions:idle", "lastAccessedTime", string(testkit.JavaLong(touched.UnixMilli())))
	testkit.Eventually(t, "the touch re-read", func() bool { return testkit.CommandCalls(t, c, "hget") > hgets })
	// A second stream of the session joins the same store watch after the
	// touch: nothing changes any more, yet it must end on time too.
	second := make(chan string, 1)
	stop2 := id.Watch(func(r string) { second <- r })
	select {
	case r := <-reasons:
		if r != auth.ReasonSessionExpired {
			t.Fatalf("idle: %q", r)
		}
		if since := time.Since(touched); since < 1950*time.Millisecond || since > 2500*time.Millisecond {
			t.Fatalf("ended %v after the touch, want about 2s", since)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("an idle session did not end")
	}
	select {
	case r := <-second:
		if r != auth.ReasonSessionExpired {
			t.Fatalf("idle, second stream: %q", r)
		}
	case <-time.After(time.Second):
		t.Fatal("the second stream of an idle session did not end")
	}
	if n, _ := testkit.Do(t, c, "EXISTS", ns+":sessions:idle").AsInt64(); n != 1 {
		t.Fatal("the hash is gone already: the test proves nothing")
	}
	if _, err := s.Authenticate(ctx, sessionCookie("idle")); !auth.IsUnauthenticated(err) {
		t.Fatalf("an expired session authenticated: %v", err)
	}
	stop()
	stop2()

	// Rewritten for another principal: its scopes no longer apply.
	testkit.WriteSpringSession(t, c, ns, "swap", "alice", time.Hour)
	id, err = s.Authenticate(ctx, sessionCookie("swap"))
	if err != nil {
		t.Fatal(err)
	}
	r = ended(t, id, time.Second, func() {
		testkit.Do(t, c, "HSET", ns+":sessions:swap", testkit.SpringPrincipalField, string(testkit.JavaString("mallory")))
	})
	if r != auth.ReasonSessionEnded {
		t.Fatalf("principal changed: %q", r)
	}
	testkit.Eventually(t, "no session watched", func() bool { return store.Watched() == 0 })
}
