package streams

import "encoding/json"

// KeyState is a key as clients see it: the data of a key watch's "snapshot"
// and "update" events and the body of GET /api/keys/<key>.
type KeyState struct {
	Key    string `json:"key"`
	Exists bool   `json:"exists"`
	// Type is Redis's TYPE: string, hash, list, set, zset, stream, ...;
	// "none" when the key does not exist.
	Type string `json:"type"`
	// Value is already JSON, so that it is encoded once per read.
	Value json.RawMessage `json:"value"`
	// TTLms is the time to live in milliseconds as Redis's PTTL says it:
	// -1 for a key without expiry, -2 for a missing key.
	TTLms int64 `json:"ttl_ms"`
	// ExpireAt is when the key expires, in Unix milliseconds (0: never). It
	// is how a snapshot sent later counts TTLms down, and how a deletion
	// with no keyspace event is told to be an expiry.
	ExpireAt int64 `json:"-"`
}

// KeyDeleted is the data of a key watch's "delete" event.
type KeyDeleted struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}
