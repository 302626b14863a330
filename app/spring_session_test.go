package main

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// withCookie requests path with a Cookie header: status, headers, JSON body.
func (k *keyflux) withCookie(path, cookie string) (int, http.Header, map[string]any) {
	k.t.Helper()
	resp, m := k.request("GET", path, "", "Cookie", cookie)
	return resp.StatusCode, resp.Header, m
}

// TestSpringSessionStreams: a session written in Spring Session's exact
// format lets its SESSION cookie read its own {session} and {principal}
// keys and nothing else, and deleting it ends its streams.
func TestSpringSessionStreams(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--auth", "spring-session", "--linger", "1m",
		"--spring-session-keys", "{namespace}:sessions:expires:{session},{namespace}:sessions:{session},user:{principal}:*")
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(k.logs.String())
		}
	})
	const mine, other = "0b6a3c1e-7f7e-4b9e-9d2b-6a1f3c5d7e90", "4f1d2e3c-5b6a-4798-8a9b-0c1d2e3f4a5b"
	testkit.WriteSpringSession(t, k.rc, "spring:session", mine, "alice", time.Hour)
	testkit.WriteSpringSession(t, k.rc, "spring:session", other, "bob", time.Hour)
	cookie := "SESSION=" + base64.StdEncoding.EncodeToString([]byte(mine))
	expiresKey := "spring:session:sessions:expires:" + mine

	status, _, body := k.withCookie("/api/identity", cookie)
	if status != 200 || body["auth"] != "spring-session" || body["subject"] != "alice" || body["session"] != mine {
		t.Fatalf("/api/identity: %d %v", status, body)
	}
	status, h, body := k.withCookie("/api/identity", "")
	if status != 401 || body["cookie"] != "SESSION" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("/api/identity without the cookie: %d %v %v", status, h, body)
	}
	unknown := "SESSION=" + base64.StdEncoding.EncodeToString([]byte("no-such-session"))
	for path, want := range map[string]int{
		"/streams/keyspace?pattern=" + expiresKey:                            401, // with an unknown session
		"/streams/keyspace?pattern=spring:session:sessions:expires:" + other: 403,
		"/streams/keyspace?pattern=spring:session:*":                         403,
		"/streams/keyspace?pattern=user:*":                                   403,
		"/streams/keys?key=user:bob:x":                                       403,
		"/api/keys/spring:session:sessions:" + other:                         403,
	} {
		ck := cookie
		if want == 401 {
			ck = unknown
		}
		if status, _, body := k.withCookie(path, ck); status != want {
			t.Errorf("%s: %d %v, want %d", path, status, body, want)
		}
	}
	if status, _, body := k.withCookie("/api/keys/spring:session:sessions:"+mine, cookie); status != 200 {
		t.Errorf("its own session hash: %d %v", status, body)
	}

	// Its own keys: 200 and events; the expires key's "expired" is what a
	// session-expiry page shows.
	s := k.open("/streams/keyspace?pattern="+expiresKey, "Cookie", cookie)
	s.Expect("connected")
	kw := k.open("/streams/keys?key=user:alice:x", "Cookie", cookie)
	kw.Expect("connected")
	kw.Expect("snapshot")
	k.do("SET", "user:alice:x", "1")
	if d := testkit.Data(t, kw.Expect("update")); d["key"] != "user:alice:x" {
		t.Errorf("key watch update %v", d)
	}
	k.do("PEXPIRE", expiresKey, "50")
	s.Expect("expire")
	if d := testkit.Data(t, s.Expect("expired")); d["key"] != expiresKey {
		t.Errorf("expired event %v", d)
	}

	// The session is deleted: every stream it opened ends.
	k.do("DEL", "spring:session:sessions:"+mine)
	for _, st := range []*testkit.Stream{s, kw} {
		ev := st.Expect("auth-expired")
		if d := testkit.Data(t, ev); d["reason"] != "session-ended" || ev.LastEventID != st.LastID {
			t.Errorf("auth-expired %v (id %q)", d, ev.LastEventID)
		}
		st.Ended()
	}
	if status, _, _ := k.withCookie("/streams/keys?key=user:alice:x", cookie); status != 401 {
		t.Errorf("a deleted session opened a stream: %d", status)
	}
}

// TestSpringSessionExpiresDuringStream: a session left idle expires by
// Spring's own clock (its hash stays five more minutes, as the indexed
// repository keeps it): the page first gets the expires key's "expired"
// keyspace event, then auth-expired, and the cookie opens nothing more.
func TestSpringSessionExpiresDuringStream(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--auth", "spring-session")
	const id = "7d3e2f1a-0b9c-4d8e-a7f6-5e4d3c2b1a09"
	testkit.WriteSpringSession(t, k.rc, "spring:session", id, "alice", 2*time.Second)
	cookie := "SESSION=" + base64.StdEncoding.EncodeToString([]byte(id))
	s := k.open("/streams/keyspace?pattern=spring:session:sessions:expires:"+id, "Cookie", cookie)
	s.Expect("connected")
	s.Expect("expired")
	ev := s.Expect("auth-expired")
	if d := testkit.Data(t, ev); d["reason"] != "session-expired" {
		t.Errorf("auth-expired %v", d)
	}
	s.Ended()
	if n, _ := k.do("EXISTS", "spring:session:sessions:"+id).AsInt64(); n != 1 {
		t.Error("the hash is gone: the test did not show Spring's rule")
	}
	if status, _, body := k.withCookie("/api/identity", cookie); status != 401 {
		t.Errorf("/api/identity with an expired session: %d %v", status, body)
	}
}
