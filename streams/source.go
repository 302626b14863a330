package streams

import (
	"context"
	"errors"
)

// The sources below are what the handlers ask for streams. The Redis
// adapter (streams/redis) implements them; the handlers see only these.

// KeyspaceSource turns keyspace notifications into streams.
type KeyspaceSource interface {
	Stream(KeyspaceQuery) Spec
}

// KeyWatchSource watches single keys: one stream (a Healer) per key.
type KeyWatchSource interface {
	Stream(key string) Spec
}

// ChannelSource relays pub/sub channels and publishes to them.
type ChannelSource interface {
	Stream(ChannelQuery) Spec
	// Publish sends payload to channel (SPUBLISH when sharded) and returns
	// how many subscribers (of every process) received it.
	Publish(ctx context.Context, channel string, sharded bool, payload []byte) (int64, error)
}

// StreamLogSource tails Redis Streams (Durable specs) and appends to them.
type StreamLogSource interface {
	Stream(StreamLogQuery) Spec
	// Check fails with ErrNotStream when key exists and is not a stream.
	Check(ctx context.Context, key string) error
	// Append adds an entry (fields as name, value pairs, in order) and
	// returns its id; maxLen > 0 trims the stream to that many entries.
	Append(ctx context.Context, key string, fields []string, maxLen int64) (string, error)
}

// KeyReader reads a key's current state.
type KeyReader interface {
	Read(ctx context.Context, key string) (KeyState, error)
}

// ErrNotStream says a key asked for as a Redis Stream holds another type.
var ErrNotStream = errors.New("not a stream")

// ErrUnknownSet says a named set of subs does not exist (never saved, or
// expired).
var ErrUnknownSet = errors.New("unknown or expired set")
