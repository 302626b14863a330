package redis

import (
	"context"
	"testing"

	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// BenchmarkValuesRead reads one hash key as /api/keys does, without HTTP:
// from the client-side cache (after the first read) and from Redis every
// time (TYPE+PTTL, then HGETALL: two round trips).
//
//	go test -run '^$' -bench BenchmarkValuesRead ./streams
func BenchmarkValuesRead(b *testing.B) {
	srv, c := testkit.Redis(b)
	testkit.Do(b, c, "HSET", "user:1", "name", "ada", "email", "ada@example.com", "plan", "pro")
	cache, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, PipelineMultiplex: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	for _, mode := range []struct {
		name string
		v    *Values
	}{
		{"cache", &Values{Client: cache, Cached: true, MaxBytes: 64 << 10}},
		{"plain", &Values{Client: c, MaxBytes: 64 << 10}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if st, err := mode.v.Read(ctx, "user:1"); err != nil || !st.Exists {
						b.Error(st, err)
						return
					}
				}
			})
		})
	}
}
