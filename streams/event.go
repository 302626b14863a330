// Package streams is Keyflux's reactive core: Redis sources become rxgo
// Observables, operators shape them once per distinct stream, and the Hub
// multicasts the encoded frames to every subscriber. It knows nothing of HTTP.
package streams

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Kind tells the hub how to treat an Event travelling down a pipeline.
type Kind uint8

const (
	// Data is an ordinary event for subscribers.
	Data Kind = iota
	// Ready says the upstream subscription is confirmed: from here on nothing
	// is missed. Subscribers get their "connected" event once it arrives.
	Ready
	// Gap says the upstream was interrupted and resumed: events may have been
	// lost, so subscribers get a "reset" and must resynchronise.
	Gap

	// dropped marks an event an operator discarded, inside a pipeline only.
	dropped Kind = 255
)

// Event is one item of a stream. Sources fill Name and Data; the hub numbers
// it and encodes it once for all subscribers.
type Event struct {
	Kind Kind
	// ID is the source's own id of the event, used verbatim as the SSE id
	// by Durable streams (a Redis Stream entry id). Other streams leave it
	// empty: the hub numbers their events. On a Ready event of a Durable
	// stream it is the position the stream (or a subscriber's replay)
	// starts after; on a Gap during a replay, the first id still available,
	// except on a Gap with Code ResetGap (a reset entry of a Durable
	// stream's history, live or replayed): that entry's own id, which the
	// "reset" carries.
	ID string
	// Name is the SSE event name ("set", "del", "message", ...).
	Name string
	// Data is encoded as JSON, unless Raw is set.
	Data any
	// Raw, when not nil, is sent as the data lines verbatim (split on line
	// breaks), for payloads that are already text.
	Raw []byte
	// Key is the Redis key (or channel) the event is about; per-key
	// operators such as throttle group by it.
	Key string
	// Code is a Gap's reset reason, one of the Reset* constants, sent to
	// clients as the reset's "reason" (ResetGap when empty).
	Code string
	// Reason explains a Gap in words, sent as the reset's "detail".
	Reason string
}

// KeyspaceEvent is the data of one keyspace notification.
type KeyspaceEvent struct {
	Key   string `json:"key"`
	Event string `json:"event"`
	DB    int    `json:"db"`
	// TS is when Keyflux received the notification, in Unix milliseconds.
	TS int64 `json:"ts"`
	// Node is the cluster node the notification came from; empty (left
	// out) on a single Redis.
	Node string `json:"node,omitempty"`
	// Type and Value are the key's state right after the event, on streams
	// asked for with values=true (see KeyState).
	Type  string          `json:"type,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Base64Suffix ends the event name of a payload that SSE text cannot carry
// byte for byte (one holding a carriage return, or bytes that are not
// UTF-8): such a payload is sent base64-encoded, as "message;base64" (or
// "<event>;base64"), instead of being silently altered.
const Base64Suffix = ";base64"

// CustomEventName reports whether a name taken from Redis data may be used
// as an SSE event name: short plain text, and not one of Keyflux's own
// ("connected", "reset"), which clients trust to mean what they say.
func CustomEventName(name string) bool {
	if name == "" || len(name) > 128 || !utf8.ValidString(name) || name == "connected" || name == "reset" {
		return false
	}
	if strings.HasSuffix(name, Base64Suffix) {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}
