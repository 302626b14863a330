package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tmaxmax/go-sse"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// cmdCalls is how many times Redis ran a command ("get", "client|kill").
func (k *keyflux) cmdCalls(cmd string) int {
	k.t.Helper()
	return testkit.CommandCalls(k.t, k.rc, cmd)
}

// infoStat is one numeric field of INFO ("tracking_total_keys").
func (k *keyflux) infoStat(section, name string) int {
	k.t.Helper()
	return testkit.InfoStat(k.t, k.rc, section, name)
}

// cacheClientID is the id of Keyflux's caching connection (CLIENT LIST).
func (k *keyflux) cacheClientID() string {
	k.t.Helper()
	list, _ := k.do("CLIENT", "LIST").ToString()
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, " name=keyflux-cache ") {
			id, _, _ := strings.Cut(strings.TrimPrefix(l, "id="), " ")
			return id
		}
	}
	k.t.Fatalf("no keyflux-cache connection in\n%s", list)
	return ""
}

// keyState decodes a snapshot or update event.
func keyState(t testing.TB, ev sse.Event) streams.KeyState {
	t.Helper()
	var st streams.KeyState
	if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
		t.Fatalf("event %s data %q: %v", ev.Type, ev.Data, err)
	}
	return st
}

// expectKey reads the next event, checks its name and key, and returns its data.
func expectKey(t testing.TB, s *testkit.Stream, name, key string) map[string]any {
	t.Helper()
	ev := s.Expect(name)
	d := testkit.Data(t, ev)
	if d["key"] != key {
		t.Fatalf("%s for key %v, want %s (%s)", name, d["key"], key, ev.Data)
	}
	return d
}

// snapshots reads one snapshot per key, in any order (each key is a topic
// of its own and becomes ready on its own), keyed by key.
func snapshots(t testing.TB, s *testkit.Stream, n int) map[string]streams.KeyState {
	t.Helper()
	out := make(map[string]streams.KeyState, n)
	for range n {
		st := keyState(t, s.Expect("snapshot"))
		out[st.Key] = st
	}
	return out
}

// counter is a Receiver on the hub for tests with many watchers: it keeps
// the values ("v<n>") of one key's events, checking that they never go back.
type counter struct {
	mu     sync.Mutex
	last   int
	seen   int // values since reset
	frames int
	err    string
}

func (c *counter) reset() {
	c.mu.Lock()
	c.seen = 0
	c.mu.Unlock()
}

func (c *counter) Send(f *streams.Frame) bool {
	var name, payload string
	for _, line := range strings.Split(string(f.Bytes), "\n") {
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			name = v
		} else if v, ok := strings.CutPrefix(line, "data: "); ok {
			payload = v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	if name != "snapshot" && name != "update" {
		return true
	}
	var st streams.KeyState
	var v string
	if json.Unmarshal([]byte(payload), &st) != nil || json.Unmarshal(st.Value, &v) != nil {
		c.err = "bad payload " + payload
		return true
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(v, "v"))
	if n < c.last {
		c.err = "value went back from v" + strconv.Itoa(c.last) + " to " + v
	}
	if n > c.last {
		c.seen++
	}
	c.last = n
	return true
}

// state is the latest value, how many newer values came since reset, and
// what went wrong.
func (c *counter) state() (int, int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.seen, c.err
}

func splitLines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
}
