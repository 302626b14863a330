package main

import (
	"net/url"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
)

// A page that adds a sub reconnects with its Last-Event-ID and names the
// new sub fresh: the old subs catch up, the new one starts now, and nobody
// gets a reset. With --journal the position carries over by its components.
func TestCombinedFreshSubs(t *testing.T) {
	for _, journal := range []bool{false, true} {
		name := "process ids"
		flags := []string{"--linger", "1m"}
		if journal {
			name = "journal positions"
			flags = append(flags, "--journal")
		}
		t.Run(name, func(t *testing.T) {
			k := startKeyflux(t, nil, flags...)
			s := k.open(combinedPath("a:channels/fa", "b:channels/fb"))
			for range 2 {
				if d := testkit.Data(t, s.Expect("connected")); journal && d["position"] == nil {
					t.Fatalf("connected %v: no position index", d)
				}
			}
			k.do("PUBLISH", "fa", "1")
			last := s.Expect("message").LastEventID
			s.Close()
			k.do("PUBLISH", "fa", "2") // missed while away
			k.do("PUBLISH", "fb", "3")
			path := combinedPath("a:channels/fa", "b:channels/fb", "c:channels/fc") + "&fresh=c"
			back := k.open(path + "&lastEventId=" + url.QueryEscape(last))
			got := map[string]string{}
			for range 5 { // 3 connected, the 2 missed messages, in any order across subs
				ev := back.Next()
				switch ev.Type {
				case "connected":
				case "message":
					d := testkit.Data(t, ev)
					got[d["sub"].(string)] = d["data"].(string)
				default:
					t.Fatalf("unexpected %s %s", ev.Type, ev.Data)
				}
			}
			if got["a"] != "2" || got["b"] != "3" {
				t.Fatalf("caught up %v", got)
			}
			k.do("PUBLISH", "fc", "4")
			if d := testkit.Data(t, back.Expect("message")); d["sub"] != "c" || d["data"] != "4" {
				t.Fatalf("fresh sub got %v", d)
			}
			// A browser's own reconnect repeats the URL with a Last-Event-ID
			// header: fresh no longer applies, every sub resumes.
			again := k.open(combinedPath("a:channels/fa", "b:channels/fb", "c:channels/fd")+"&fresh=c", "Last-Event-ID", last)
			for ev := again.Next(); ev.Type != "reset"; ev = again.Next() {
				if ev.Type != "connected" && ev.Type != "message" {
					t.Fatalf("unexpected %s", ev.Type)
				}
			}
		})
	}
	k := startKeyflux(t, nil)
	if code, body := k.get(combinedPath("a:channels/x") + "&fresh=zz"); code != 400 {
		t.Fatalf("fresh naming no sub: %d %v", code, body)
	}
}
