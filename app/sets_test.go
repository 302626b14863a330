package main

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

func setBody(t *testing.T, subs []string) string {
	b, err := json.Marshal(map[string]any{"subs": subs})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func channelSubs(n int) []string {
	subs := make([]string, n)
	for i := range subs {
		subs[i] = "c" + strconv.Itoa(i) + ":channels/room:" + strconv.Itoa(i)
	}
	return subs
}

// A page with 200 subs names them once and opens them by a short id, on
// any Keyflux process sharing the Redis.
func TestSetsCarry200SubsAcrossProcesses(t *testing.T) {
	a := startKeyflux(t, nil)
	b := startKeyfluxOn(t, a.redis)
	resp, body := a.request("POST", "/api/sets", setBody(t, channelSubs(200)), "Content-Type", "application/json")
	if resp.StatusCode != 201 {
		t.Fatalf("POST /api/sets = %d %v", resp.StatusCode, body)
	}
	id, _ := body["id"].(string)
	if len(id) != 22 {
		t.Fatalf("set id %q", id)
	}
	if exp, err := time.Parse(time.RFC3339, body["expires"].(string)); err != nil || time.Until(exp) < 9*time.Minute {
		t.Fatalf("expires %v (%v)", body["expires"], err)
	}
	s := b.open("/streams?set=" + id)
	for range 200 {
		s.Expect("connected")
	}
	for i := 199; i >= 0; i-- {
		a.do("PUBLISH", "room:"+strconv.Itoa(i), "hi "+strconv.Itoa(i))
	}
	got := map[string]bool{}
	for range 200 { // in order per sub; subs are topics of their own
		d := testkit.Data(t, s.Expect("message"))
		sub, _ := d["sub"].(string)
		if d["data"] != "hi "+strings.TrimPrefix(sub, "c") || got[sub] {
			t.Fatalf("event %v (twice: %v)", d, got[sub])
		}
		got[sub] = true
	}
	// The same set saved again is the same id.
	if _, again := a.request("POST", "/api/sets", setBody(t, channelSubs(200))); again["id"] != id {
		t.Fatalf("same set, id %v then %v", id, again["id"])
	}
}

// Bad sets are refused before anything is saved; unknown ids are 404.
func TestSetsRefusals(t *testing.T) {
	k := startKeyflux(t, nil, "--expose-channels", "room:")
	for _, c := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{"subs": []}`, 400, "sub is required"},
		{`{"subs": "x"}`, 400, "want {"},
		{`{"subs": ["a:channels/room:1"], "extra": 1}`, 400, "want {"},
		{setBody(t, channelSubs(201)), 400, "more than 200 subs"},
		{setBody(t, []string{"a:channels/room:1", "a:channels/room:2"}), 400, "named twice"},
		{setBody(t, []string{"a:channels/secret"}), 403, "exposed"},
		{`{"subs": ["` + strings.Repeat("x", 33<<10) + `"]}`, 413, "at most"},
	} {
		resp, body := k.request("POST", "/api/sets", c.body, "Content-Type", "application/json")
		if resp.StatusCode != c.status || !strings.Contains(body["error"].(string), c.msg) {
			t.Errorf("POST %.60s = %d %v, want %d %q", c.body, resp.StatusCode, body, c.status, c.msg)
		}
	}
	if keys, _ := k.do("KEYS", "keyflux:set:*").AsStrSlice(); len(keys) != 0 {
		t.Fatalf("refused sets saved: %v", keys)
	}
	for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "short", url.QueryEscape("../../etc")} {
		if code, body := k.get("/streams?set=" + id); code != 404 || !strings.Contains(body["error"].(string), "POST /api/sets again") {
			t.Errorf("set %q: %d %v", id, code, body)
		}
	}
	if code, body := k.get("/streams?set=AAAAAAAAAAAAAAAAAAAAAA&sub=a:channels/room:1"); code != 400 {
		t.Errorf("set and sub: %d %v", code, body)
	}
}

// Sets live in Redis, so their creation is paced per address.
func TestSetsArePacedPerAddress(t *testing.T) {
	k := startKeyflux(t, nil)
	for i := range 10 {
		if resp, body := k.request("POST", "/api/sets", setBody(t, []string{"a:channels/n" + strconv.Itoa(i)})); resp.StatusCode != 201 {
			t.Fatalf("set %d: %d %v", i, resp.StatusCode, body)
		}
	}
	resp, body := k.request("POST", "/api/sets", setBody(t, []string{"a:channels/more"}))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body["error"].(string), "too many sets") {
		t.Fatalf("11th set: %d %v (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// With --journal, one connection holds at most 32 subs with ids of their
// own: one position must carry them all.
func TestSetsJournaledSubsBounded(t *testing.T) {
	k := startKeyflux(t, nil, "--journal")
	resp, body := k.request("POST", "/api/sets", setBody(t, channelSubs(33)))
	if resp.StatusCode != 400 || !strings.Contains(body["error"].(string), "more than 32 subs with ids of their own") {
		t.Fatalf("33 journaled subs: %d %v", resp.StatusCode, body)
	}
	if resp, body := k.request("POST", "/api/sets", setBody(t, channelSubs(32))); resp.StatusCode != 201 {
		t.Fatalf("32 journaled subs: %d %v", resp.StatusCode, body)
	}
}
