package redis

import (
	"fmt"
	"testing"

	"github.com/redis/rueidis"
)

// BenchmarkCoverDeliver is one keyspace notification on a cover holding
// 10,000 covered patterns (--max-topics' default): with distinct literal
// prefixes (the index skips them) and, the worst case, with one shared
// literal prefix (each is matched).
func BenchmarkCoverDeliver(b *testing.B) {
	for _, shape := range []string{"__keyspace@0__:c%d:*", "__keyspace@0__:*c%d"} {
		b.Run(shape, func(b *testing.B) {
			var c coverage
			l := &Listener{OnMessage: func(rueidis.PubSubMessage) {}}
			for i := range 10000 {
				c.add(fmt.Sprintf(shape, i), l)
			}
			m := rueidis.PubSubMessage{Channel: "__keyspace@0__:c77:order:12345", Message: "set"}
			for b.Loop() {
				c.deliver(m, nil)
			}
		})
	}
}
