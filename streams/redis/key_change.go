package redis

import (
	"bytes"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// change is the event that takes watchers from prev to st, if any.
func change(prev, st streams.KeyState, resync bool, event string) (streams.Event, bool) {
	switch {
	case resync:
		return streams.Event{Name: "snapshot", Data: st}, true
	case st.Exists && prev.Exists && same(prev, st):
		// A write that changed nothing (SET to the same value), or a second
		// read of a change already read: watchers have this state.
		return streams.Event{}, false
	case st.Exists:
		return streams.Event{Name: "update", Data: st}, true
	case prev.Exists:
		return streams.Event{Name: "delete", Data: streams.KeyDeleted{Key: st.Key, Reason: deleteReason(event, prev)}}, true
	}
	return streams.Event{}, false // absent before and after: nothing to tell
}

// expiryJitter is how far apart two reads may place one expiry time: each
// adds Redis's PTTL to the local clock when the reply arrives.
const expiryJitter = 50

// same reports whether two reads found the same state.
func same(a, b streams.KeyState) bool {
	if a.Type != b.Type || !bytes.Equal(a.Value, b.Value) || (a.ExpireAt == 0) != (b.ExpireAt == 0) {
		return false
	}
	d := a.ExpireAt - b.ExpireAt
	return -expiryJitter <= d && d <= expiryJitter
}

// removes reports whether a keyspace event is one that takes the key away.
func removes(event string) bool {
	switch event {
	case "del", "expired", "evicted", "rename_from", "move_from":
		return true
	}
	return false
}

// deleteReason names why a key went away, from the keyspace event that
// removed it. Without one (notifications off), a key past its TTL expired.
func deleteReason(event string, prev streams.KeyState) string {
	switch event {
	case "del", "expired", "evicted":
		return event
	case "rename_from":
		return "renamed"
	case "move_from":
		return "moved"
	case "":
		if prev.ExpireAt != 0 && prev.ExpireAt <= time.Now().UnixMilli() {
			return "expired"
		}
		return "unknown"
	}
	return event
}
