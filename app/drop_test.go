package main

import (
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// Sink.Drop is a network blip for every client: streams end, the server
// keeps serving, and a client resumes where it was.
func TestDropEndsStreamsAndKeepsServing(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m")
	const path = "/streams/keyspace?pattern=d:*"
	s := k.open(path)
	s.Expect("connected")
	k.do("SET", "d:1", "x")
	s.Expect("set")
	if n := k.srv.sink.Drop("test"); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	s.Ended()
	if n := k.srv.sink.Clients(); n != 0 {
		t.Fatalf("%d clients after a drop", n)
	}
	k.do("SET", "d:2", "x")
	r := k.open(path, "Last-Event-ID", s.LastID)
	r.Expect("connected")
	if got := testkit.Data(t, r.Expect("set"))["key"]; got != "d:2" {
		t.Fatalf("resumed with %v, want d:2", got)
	}
}
