package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// A combined stream of two Redis Streams (one behind a filter) resumes by
// position: its id holds one entry id per log, and a client that moves
// between two processes, with entries written while it is away, gets every
// entry of each log exactly once, in order.
func TestCombinedLogsResumeByPosition(t *testing.T) {
	rs := testkit.StartRedis(t)
	procs := []*keyflux{startKeyfluxOn(t, rs), startKeyfluxOn(t, rs)}
	path := combinedPath("x:log/feed-x", "y:log/feed-y?"+url.Values{"filter": {`n != "3"`}}.Encode())
	k := procs[0]
	s := k.open(path)
	last := ""
	subs := map[string]bool{}
	for range 2 {
		ev := s.Expect("connected")
		subs[testkit.Data(t, ev)["sub"].(string)] = true
		last = max(last, ev.LastEventID) // the second one completes the position
	}
	if !subs["x"] || !subs["y"] || last == "" {
		t.Fatalf("connected to %v, id %q", subs, last)
	}
	n := map[string]int{}
	write := func(m int) {
		for range m {
			for _, log := range []string{"x", "y"} {
				n[log]++
				k.xadd("feed-"+log, "n", strconv.Itoa(n[log]))
			}
		}
	}
	got := map[string][]int{}
	prev := last // the id before the event read, on this connection
	read := func(events int) {
		t.Helper()
		for events > 0 {
			ev := s.Next()
			if ev.Type == "connected" { // a resume's: the replays of the logs interleave
				if ev.LastEventID != prev { // the parser keeps the last id it got
					t.Fatalf("connected of a resume has id %q", ev.LastEventID)
				}
				continue
			}
			if ev.Type != "entry" {
				t.Fatalf("unexpected %s %s", ev.Type, ev.Data)
			}
			events--
			var d struct {
				Sub  string
				Data any
			}
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
				t.Fatal(err)
			}
			entry, ok := d.Data.(map[string]any)
			if text, isText := d.Data.(string); isText { // the entry's JSON as text
				ok = json.Unmarshal([]byte(text), &entry) == nil
			}
			if !ok {
				t.Fatalf("entry %s", ev.Data)
			}
			v, _ := strconv.Atoi(entry["n"].(string))
			got[d.Sub] = append(got[d.Sub], v)
			p, err := streams.DecodePosition(ev.LastEventID)
			if err != nil || len(p) != 2 {
				t.Fatalf("entry id %q is no position of two logs: %v", ev.LastEventID, err)
			}
			if ev.LastEventID == prev {
				t.Fatalf("entry %s has no id of its own", ev.Data)
			}
			last, prev = ev.LastEventID, ev.LastEventID
		}
	}
	// y's entry 3 is filtered out: 2 + 2 + 1 + 2 + ... events per round.
	expect := func(from, to int) int {
		c := 2 * (to - from + 1)
		if from <= 3 && 3 <= to {
			c--
		}
		return c
	}
	write(2)
	read(expect(1, 2))
	for move := 1; move <= 4; move++ {
		s.Close()
		before := n["x"]
		write(3) // while the client is away
		k = procs[move%2]
		s, prev = k.open(path, "Last-Event-ID", last), ""
		write(2)
		read(expect(before+1, n["x"]))
	}
	for _, log := range []string{"x", "y"} {
		var want []int
		for i := 1; i <= n[log]; i++ {
			if log != "y" || i != 3 {
				want = append(want, i)
			}
		}
		if !slices.Equal(got[log], want) {
			t.Fatalf("log %s: got %v, want %v", log, got[log], want)
		}
	}
	// An id from elsewhere resets each log and then gives positions again.
	s.Close()
	s = k.open(path, "Last-Event-ID", "1733237000000-0.elsewhere")
	names := map[string]int{}
	for range 4 {
		names[s.Next().Type]++
	}
	if fmt.Sprint(names) != "map[connected:2 reset:2]" {
		t.Fatalf("resume with a foreign id: %v", names)
	}
}
