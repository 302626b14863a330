package streams_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// Whatever expression compiles, one evaluation on hostile data ends soon
// and allocates a bounded amount: the budget, its overshoot, the VM's own.
func FuzzExprBounded(f *testing.F) {
	for _, c := range budgetCases {
		f.Add(c.src, c.value, len(c.key))
	}
	f.Add(`len(reduce(1..30, #acc + "x" + #acc, key)) < 0`, "1", 10)
	f.Add(`let s = key + key; len(replace(s, "", s + s)) > 0`, "1", 100)
	f.Add(`any(split(key, ""), {len(upper(key)) > 0})`, "1", 1000)
	f.Fuzz(func(t *testing.T, src, value string, keyLen int) {
		ops, err := streams.Ops{Filter: src}.Compile()
		if err != nil || ops == nil {
			return
		}
		if keyLen %= 20000; keyLen < 0 {
			keyLen = -keyLen
		}
		env := map[string]any{"key": strings.Repeat("k", keyLen), "value": value, "event": "set"}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = streams.EvalFilter(ops, env)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("%q with a %d-byte key still running after 2s", src, keyLen)
		}
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
			t.Fatalf("%q with a %d-byte key allocated %d MB", src, keyLen, grown>>20)
		}
	})
}
