package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

func combinedPath(subs ...string) string {
	q := url.Values{"sub": subs}
	return "/streams?" + q.Encode()
}

func TestCombinedStream(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m")
	path := combinedPath(
		"orders:keyspace?"+url.Values{"pattern": {"order:*"}, "events": {"set"}}.Encode(),
		"users:keyspace?pattern=user:*",
	)
	s := k.open(path)
	subsSeen := map[string]bool{}
	for range 2 {
		subsSeen[testkit.Data(t, s.Expect("connected"))["sub"].(string)] = true
	}
	if !subsSeen["orders"] || !subsSeen["users"] {
		t.Fatalf("connected events for %v", subsSeen)
	}
	k.do("SET", "order:1", "x")
	k.do("DEL", "order:1") // filtered out by orders' events
	k.do("SET", "user:1", "x")
	k.do("DEL", "user:1")
	k.do("SET", "user:2", "line\nbreak")
	// Each sub is its own pipeline: order holds within a sub, not across.
	got := map[string][]string{}
	for range 4 {
		ev := s.Next()
		d := testkit.Data(t, ev)
		inner, _ := d["data"].(map[string]any)
		got[d["sub"].(string)] = append(got[d["sub"].(string)], ev.Type+" "+inner["key"].(string))
	}
	if fmt.Sprint(got["orders"]) != "[set order:1]" || fmt.Sprint(got["users"]) != "[set user:1 del user:1 set user:2]" {
		t.Fatalf("events by sub %v", got)
	}
}

func TestCombinedStreamResumes(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--linger", "1m")
	path := combinedPath("a:keyspace?pattern=a:*", "b:keyspace?pattern=b:*")
	s := k.open(path)
	s.Expect("connected")
	s.Expect("connected")
	var seen []string
	write := func(from, to int) {
		for i := from; i < to; i++ {
			k.do("SET", fmt.Sprint("a:", i), "x")
			k.do("SET", fmt.Sprint("b:", i), "x")
		}
	}
	write(0, 5)
	for range 10 {
		seen = append(seen, testkit.Data(t, s.Expect("set"))["data"].(map[string]any)["key"].(string))
	}
	s.Close()
	witness := k.open(path)
	witness.Expect("connected")
	witness.Expect("connected")
	write(5, 10)
	for range 10 {
		witness.Expect("set")
	}
	r := k.open(path, "Last-Event-ID", s.LastID)
	r.Expect("connected")
	r.Expect("connected")
	for range 10 {
		seen = append(seen, testkit.Data(t, r.Expect("set"))["data"].(map[string]any)["key"].(string))
	}
	k.do("SET", "a:live", "x")
	if got := testkit.Data(t, r.Expect("set"))["data"].(map[string]any)["key"]; got != "a:live" {
		t.Fatalf("after the replay: %v (a duplicate?)", got)
	}
	// Every event once, and in order within each sub.
	bySub := map[string][]string{}
	for _, key := range seen {
		bySub[key[:1]] = append(bySub[key[:1]], key)
	}
	for _, sub := range []string{"a", "b"} {
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprint(sub, ":", i))
		}
		if strings.Join(bySub[sub], " ") != strings.Join(want, " ") {
			t.Fatalf("sub %s across the reconnect: %v, want %v", sub, bySub[sub], want)
		}
	}
}

func TestCombinedStreamBadInput(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--expose", "user:")
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/streams", 400, "sub is required"},
		{combinedPath("nocolon"), 400, "<name>:<stream>"},
		{combinedPath("bad name:keyspace"), 400, "<name>:<stream>"},
		{combinedPath("a:nosuch?x=1"), 400, "unknown stream"},
		{combinedPath("a:keyspace?pattern=user:*", "a:keyspace?pattern=user:1"), 400, "named twice"},
		{combinedPath("a:keyspace?pattern=user:*&lastEventId=x"), 400, "whole stream"},
		{combinedPath("a:keyspace?pattern=secret:*"), 403, `sub "a": pattern`},
		{combinedPath("a:keyspace?pattern=user:*&filter=%3D%3D"), 400, `sub "a": filter`},
		{combinedPath("a:keyspace?pattern=user:*") + "&filter=x", 400, "inside each sub"},
		{combinedPath(strings.Split(strings.Repeat("x:keyspace,", 201), ",")...), 400, "more than"},
	} {
		status, body := k.get(c.path)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %v, want %d with %q", c.path, status, body, c.status, c.want)
		}
	}
	if k.srv.hub.Topics() != 0 || k.numpat() != 0 {
		t.Fatal("a rejected request left a subscription behind")
	}
}

func TestCombinedStreamWithChannel(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags)
	s := k.open(combinedPath("news:channels/news", "keys:keyspace?pattern=k:*"))
	s.Expect("connected")
	s.Expect("connected")
	k.do("PUBLISH", "news", "line 1\nline 2")
	ev := s.Expect("message")
	if d := testkit.Data(t, ev); d["sub"] != "news" || d["data"] != "line 1\nline 2" {
		t.Fatalf("channel event in a combined stream: %s", ev.Data)
	}
}
