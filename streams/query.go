package streams

import "strings"

// The queries below are what a client may ask of a source, validated and
// normalised by the handlers; equal queries are equal streams.

// KeyspaceQuery selects keyspace notifications: keys matching Pattern (a
// Redis glob) in database DB, optionally only the named events.
type KeyspaceQuery struct {
	DB      int
	Pattern string
	Events  []string // sorted, without duplicates; empty means all
	// Values adds the key's type and value to every event.
	Values bool
}

// ChannelQuery selects Redis pub/sub messages: those PUBLISHed to one
// channel, or to any channel a glob Pattern matches (PSUBSCRIBE).
type ChannelQuery struct {
	Name    string
	Pattern bool
	// Sharded relays sharded pub/sub (SSUBSCRIBE, SPUBLISH): on a cluster
	// only the channel's slot owner carries it. Never with Pattern.
	Sharded bool
	// Base64 sends every payload base64-encoded, for binary channels.
	Base64 bool
}

// StreamLogQuery selects a Redis Stream, tailed as a log of entries, and
// where a client without a Last-Event-ID starts: at the newest entry (the
// default), at entry From (inclusive), or Backlog entries back.
type StreamLogQuery struct {
	Key     string
	From    string
	Backlog int
}

// InternalChannel reports whether a channel is one Redis publishes on
// itself: keyspace notifications name keys, which expose rules guard, and
// keyspace streams trust them, so they are never relayed or published to.
func InternalChannel(name string) bool {
	return strings.HasPrefix(name, "__keyspace@") || strings.HasPrefix(name, "__keyevent@") ||
		strings.HasPrefix(name, "__redis__:")
}
