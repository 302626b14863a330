package redis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
)

func state(value string, ExpireAt int64) streams.KeyState {
	return streams.KeyState{Key: "k", Exists: true, Type: "string", Value: json.RawMessage(value), ExpireAt: ExpireAt}
}

func TestChange(t *testing.T) {
	gone := streams.KeyState{Key: "k", Type: "none", Value: json.RawMessage("null"), TTLms: -2}
	now := time.Now().UnixMilli()
	cases := []struct {
		name       string
		prev, st   streams.KeyState
		resync     bool
		event      string
		want, data string
	}{
		{"changed", state(`"a"`, 0), state(`"b"`, 0), false, "set", "update", `"b"`},
		{"created", gone, state(`"a"`, 0), false, "set", "update", `"a"`},
		{"same value", state(`"a"`, 0), state(`"a"`, 0), false, "set", "", ""},
		{"same expiry, read twice", state(`"a"`, now), state(`"a"`, now+20), false, "", "", ""},
		{"expiry moved", state(`"a"`, now), state(`"a"`, now+5000), false, "expire", "update", ""},
		{"expiry removed", state(`"a"`, now), state(`"a"`, 0), false, "persist", "update", ""},
		{"resync says it anyway", state(`"a"`, 0), state(`"a"`, 0), true, "", "snapshot", `"a"`},
		{"resync of a missing key", gone, gone, true, "", "snapshot", "null"},
		{"still missing", gone, gone, false, "del", "", ""},
		{"deleted", state(`"a"`, 0), gone, false, "del", "delete", ""},
	}
	for _, c := range cases {
		ev, ok := change(c.prev, c.st, c.resync, c.event)
		if ok != (c.want != "") || ev.Name != c.want {
			t.Errorf("%s: got %q %v, want %q", c.name, ev.Name, ok, c.want)
			continue
		}
		if st, isState := ev.Data.(streams.KeyState); isState && c.data != "" && string(st.Value) != c.data {
			t.Errorf("%s: value %s, want %s", c.name, st.Value, c.data)
		}
	}
}

func TestDeleteReason(t *testing.T) {
	past := time.Now().Add(-time.Second).UnixMilli()
	future := time.Now().Add(time.Hour).UnixMilli()
	for _, c := range []struct {
		event    string
		ExpireAt int64
		want     string
	}{
		{"del", 0, "del"}, {"expired", past, "expired"}, {"evicted", 0, "evicted"},
		{"rename_from", 0, "renamed"}, {"move_from", 0, "moved"},
		{"", past, "expired"}, // notifications off: the TTL says it
		{"", future, "unknown"}, {"", 0, "unknown"},
		{"hexpired", 0, "hexpired"}, // a newer Redis's reason, passed on
	} {
		if got := deleteReason(c.event, state(`"x"`, c.ExpireAt)); got != c.want {
			t.Errorf("deleteReason(%q, ExpireAt %d) = %q, want %q", c.event, c.ExpireAt, got, c.want)
		}
	}
}
