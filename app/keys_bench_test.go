package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/redis/rueidis"
)

// BenchmarkAPIKeys compares GET /api/keys/<key> served from the client-side
// cache with a Redis read per request (--api-cache=false), over keep-alive
// HTTP from 32 concurrent clients. It reports requests/s, how many
// commands Redis ran per request and Redis's CPU time per request.
//
//	go test -run '^$' -bench BenchmarkAPIKeys -benchtime 20000x ./app
func BenchmarkAPIKeys(b *testing.B) {
	for _, mode := range []struct{ name, flag string }{{"cache", "true"}, {"plain", "false"}} {
		b.Run(mode.name, func(b *testing.B) {
			k := startKeyflux(b, nil, "--api-cache="+mode.flag, "--log-level", "warn")
			k.do("HSET", "user:1", "name", "ada", "email", "ada@example.com", "plan", "pro")
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			url := k.base + "/api/keys/user:1"
			get := func() error {
				resp, err := client.Get(url)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
			if err := get(); err != nil { // warm: the first read fills the cache
				b.Fatal(err)
			}
			before := k.infoStat("stats", "total_commands_processed")
			cpu := redisCPU(k)
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := get(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpuUsed := redisCPU(k) - cpu
			// Less the three INFOs: the one that read before, and two of redisCPU.
			cmds := k.infoStat("stats", "total_commands_processed") - before - 3
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(cmds)/float64(b.N), "redis-cmds/req")
			b.ReportMetric(cpuUsed*1e6/float64(b.N), "redis-cpu-µs/req")
		})
	}
}

// BenchmarkTrackingModes writes to 1,000 keys under an exposed prefix while
// Keyflux watches 10 of them and /api/keys has read all 1,000 once, in OPTIN
// (Redis remembers each key Keyflux read) and BCAST (Redis sends every change
// under the prefix) modes. Per write it reports the invalidations Keyflux
// received, Keyflux's reads, and Redis's CPU time; it also reports the keys
// in Redis's tracking table and the writer's throughput.
//
//	go test -run '^$' -bench BenchmarkTrackingModes -benchtime 100000x ./app
func BenchmarkTrackingModes(b *testing.B) {
	const keys, watched, batch = 1000, 10, 100
	for _, mode := range []string{"optin", "bcast"} {
		b.Run(mode, func(b *testing.B) {
			k := startKeyflux(b, nil, "--tracking", mode, "--expose", "t:", "--log-level", "warn")
			for i := range keys {
				k.do("SET", fmt.Sprint("t:", i), "0")
			}
			for i := range keys {
				if status, _ := k.get(fmt.Sprint("/api/keys/t:", i)); status != 200 {
					b.Fatalf("status %d", status)
				}
			}
			for i := range watched {
				sub, err := k.srv.hub.Subscribe(k.srv.redis.KeyWatches.Stream(fmt.Sprint("t:", i*(keys/watched))), &counter{}, "")
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Close()
			}
			testkit.Eventually(b, "watches live", func() bool { return k.srv.redis.Invalidations.Watched() == watched })
			tracked := k.infoStat("stats", "tracking_total_keys")
			inv, reads := k.srv.redis.Invalidations.Received(), keyReads(k)
			cpu := redisCPU(k)
			ctx := context.Background()
			cmds := make(rueidis.Commands, 0, batch)
			b.ResetTimer()
			for n := 0; n < b.N; {
				cmds = cmds[:0]
				for ; len(cmds) < batch && n < b.N; n++ {
					cmds = append(cmds, k.rc.B().Set().Key(fmt.Sprint("t:", n%keys)).Value(fmt.Sprint(n)).Build())
				}
				for _, r := range k.rc.DoMulti(ctx, cmds...) {
					if err := r.Error(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			elapsed := b.Elapsed()
			// Invalidations are asynchronous: let them land before counting.
			time.Sleep(200 * time.Millisecond)
			n := float64(b.N)
			b.ReportMetric(n/elapsed.Seconds(), "writes/s")
			b.ReportMetric(float64(k.srv.redis.Invalidations.Received()-inv)/n, "invalidations/write")
			b.ReportMetric(float64(keyReads(k)-reads)/n, "keyflux-reads/write")
			b.ReportMetric((redisCPU(k)-cpu)*1e6/n, "redis-cpu-µs/write")
			b.ReportMetric(float64(tracked), "tracked-keys")
		})
	}
}

func keyReads(k *keyflux) float64 {
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v float64
	for _, line := range splitLines(string(body)) {
		if _, err := fmt.Sscanf(line, "keyflux_key_reads_total %g", &v); err == nil {
			return v
		}
	}
	return 0
}

// redisCPU is Redis's user+system CPU time in seconds.
func redisCPU(k *keyflux) float64 {
	info, _ := k.do("INFO", "cpu").ToString()
	var total float64
	for _, line := range splitLines(info) {
		var v float64
		if _, err := fmt.Sscanf(line, "used_cpu_sys:%g", &v); err == nil {
			total += v
		} else if _, err := fmt.Sscanf(line, "used_cpu_user:%g", &v); err == nil {
			total += v
		}
	}
	return total
}
