package streams_test

import (
	"testing"

	"github.com/keyflux/keyflux/streams"
)

// The budget must not cost ordinary filters anything: they have no loop
// and build nothing, so they run unpatched.
func BenchmarkExprFilter(b *testing.B) {
	for _, src := range []string{`value.temp > 30`, `key matches "^sensor:" && upper(event) == "SET"`, `any(value.items, # > 3)`} {
		b.Run(src, func(b *testing.B) {
			ops, err := streams.Ops{Filter: src}.Compile()
			if err != nil {
				b.Fatal(err)
			}
			run := streams.FilterRunner(ops)
			env := map[string]any{"key": "sensor:1", "event": "set", "value": map[string]any{"temp": 31.0, "items": []any{1.0, 2.0, 3.0, 4.0}}}
			b.ReportAllocs()
			for b.Loop() {
				if out, err := run(env); err != nil || out != true {
					b.Fatal(out, err)
				}
			}
		})
	}
}
