package main

import "testing"

// Sink.Drop is a network blip for every client: streams end, the server
// keeps serving, and a client resumes where it was.
func TestDropEndsStreamsAndKeepsServing(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m")
	const path = "/streams/keyspace?pattern=d:*"
	s := k.open(path)
	s.expect("connected")
	k.do("SET", "d:1", "x")
	s.expect("set")
	if n := k.srv.sink.Drop("test"); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	s.ended()
	if n := k.srv.sink.Clients(); n != 0 {
		t.Fatalf("%d clients after a drop", n)
	}
	k.do("SET", "d:2", "x")
	r := k.open(path, "Last-Event-ID", s.lastID)
	r.expect("connected")
	if got := data(t, r.expect("set"))["key"]; got != "d:2" {
		t.Fatalf("resumed with %v, want d:2", got)
	}
}
