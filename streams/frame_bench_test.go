package streams_test

import (
	"testing"

	"github.com/keyflux/keyflux/streams"
)

// BenchmarkEncodeFrame encodes one keyspace event, as a topic does once per
// event whatever its number of subscribers.
func BenchmarkEncodeFrame(b *testing.B) {
	data := streams.KeyspaceEvent{Key: "user:1", Event: "set", DB: 0, TS: 1733237000000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := streams.EncodeFrame("1733237000000-0", "set", data, nil); err != nil {
			b.Fatal(err)
		}
	}
}
