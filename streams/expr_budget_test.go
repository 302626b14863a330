package streams_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Bombs whose cost is in their text are refused when compiled, with a
// reason and a position; the process never runs them.
func TestExprStaticRefusals(t *testing.T) {
	for _, c := range []struct{ op, src, want string }{
		{"filter", `len(reduce(1..31, #acc + #acc, key)) < 0`, "accumulator more than once"},
		{"map", `reduce(1..31, #acc + #acc, key)`, "accumulator more than once"},
		{"filter", `len(reduce(1..31, let a = #acc; a + "x" + a, key)) < 0`, "accumulator more than once"},
		{"filter", `len(reduce(1..31, [#acc, #acc], key)) < 0`, "accumulator more than once"},
		{"filter", `len(reduce(1..31, replace(#acc, "", #acc), key)) < 0`, "accumulator more than once"},
		{"filter", `len(reduce(1..31, #acc + string(#acc), key)) < 0`, "accumulator more than once"},
		{"filter", `any(1..1000, {any(1..1000, {any(1..1000, {false})})})`, "nested loops"},
		{"filter", `count(1..400, {count(1..400, {true}) > 0}) > 0`, "nested loops"},
		{"map", `map(1..100000, {map([1,2], {#})})`, "nested loops"},
	} {
		ops := streams.Ops{Filter: c.src}
		if c.op == "map" {
			ops = streams.Ops{Map: c.src}
		}
		_, err := ops.Compile()
		var ee *streams.ExprError
		if !errors.As(err, &ee) || ee.Op != c.op || !strings.Contains(ee.Message, c.want) || ee.Column < 1 {
			t.Errorf("%s=%s: %v, want an ExprError with %q", c.op, c.src, err, c.want)
		}
	}
	// Ordinary uses of the same builtins still compile.
	for _, src := range []string{
		`reduce(1..10, #acc > # ? #acc : #, 0) > 3`, // a maximum: one copy per branch
		`reduce(value.items ?? [], #acc + #, 0) > 3`,
		`len(reduce(1..5, #acc + "x", key)) > 0`,
		`any(1..100, {any(1..100, {# == 5})})`,
		`value.temp > 30`,
	} {
		if _, err := (streams.Ops{Filter: src}).Compile(); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

// budgetCase is an expression that passes compile and busts a budget once
// it runs on data of some size.
type budgetCase struct {
	name, src, key, value, want string
}

var budgetCases = []budgetCase{
	// A CPU bomb with one small range: 10^9 steps and almost no memory.
	{"steps", `let r = 1..int(value); any(r, {any(r, {any(r, {# < 0})})})`, "k", "1000", "steps"},
	// Squares a string with no loop at all: a 20 KB key gives 400 MB.
	{"replace", `len(replace(key, "", key)) > 0`, strings.Repeat("k", 20000), "1", "bytes"},
	// Cubes it.
	{"replace-nested", `len(replace(replace(key, "", key), "", key)) > 0`, strings.Repeat("k", 300), "1", "bytes"},
	// Doubles a string per let: 2^26 times the key.
	{"let", `let a = key + key; let b = a + a; let c = b + b; let d = c + c; let e = d + d; let f = e + e; let g = f + f; let h = g + g; let i = h + h; let j = i + i; let k = j + j; let l = k + k; let m = l + l; let n = m + m; let o = n + n; let p = o + o; let q = p + p; let r = q + q; let s = r + r; let u = s + s; len(u) > 0`, strings.Repeat("k", 64), "1", "bytes"},
	// A shared array of 2 elements per level unrolled by toJSON: 2^22 keys.
	{"toJSON", `len(toJSON(let a = [key, key]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; let k = [j, j]; let l = [k, k]; let m = [l, l]; let n = [m, m]; let o = [n, n]; let p = [o, o]; let q = [p, p]; let r = [q, q]; let s = [r, r]; let u = [s, s]; let v = [u, u]; let w = [v, v]; w)) > 0`, "k", "1", "bytes"},
	// The same unrolled by flatten.
	{"flatten", `len(flatten(let a = [key, key]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; let k = [j, j]; let l = [k, k]; let m = [l, l]; let n = [m, m]; let o = [n, n]; let p = [o, o]; let q = [p, p]; let r = [q, q]; let s = [r, r]; let u = [s, s]; let v = [u, u]; let w = [v, v]; w)) > 0`, "k", "1", "bytes"},
	// join of one big value repeated by a loop.
	{"join", `len(join(map(1..4000, key), ",")) > 0`, strings.Repeat("k", 10000), "1", "bytes"},
	// A loop scanning a large value at every step.
	{"scan", `let r = 1..9000; any(r, {any(r, {key contains "zz"})})`, strings.Repeat("k", 4096), "1", "steps"},
}

// runBounded runs fn in a goroutine and fails the test if it has not
// returned by the deadline: on code with no budget the bombs spin or grow
// for seconds, and the test must fail, not hang.
func runBounded(t *testing.T, name string, d time.Duration, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still running after %v", name, d)
		return nil
	}
}

// Each bomb fails its own evaluation, at once, with the budget named, and
// the failure is counted; the next event is evaluated as usual.
func TestExprRuntimeBudget(t *testing.T) {
	for _, c := range budgetCases {
		t.Run(c.name, func(t *testing.T) {
			// Events with the key "ok" pass without running the bomb.
			spec, r, m := opsHub(t, streams.Ops{Filter: `key == "ok" || (` + c.src + `)`})
			bomb := streams.Event{Name: "set", Key: c.key, Data: map[string]any{"key": c.key, "value": c.value}}
			start := time.Now()
			spec.send(t, bomb)
			spec.send(t, streams.Event{Name: "set", Key: "ok", Data: map[string]any{"key": "ok", "value": "1"}})
			got := r.Wait(t, 2)
			if !strings.Contains(string(got[1].Bytes), `"key":"ok"`) {
				t.Fatalf("the bomb passed the filter: %.200s", got[1].Bytes)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("the bomb held the pipeline for %v", d)
			}
			if n := testutil.ToFloat64(m.OperatorErrors.WithLabelValues("filter")); n != 1 {
				t.Fatalf("operator errors %v, want 1 (the bomb)", n)
			}
		})
	}
}

// The budget error itself names what was exceeded.
func TestExprBudgetError(t *testing.T) {
	for _, c := range budgetCases {
		ops, err := streams.Ops{Filter: c.src}.Compile()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err = runBounded(t, c.name, 5*time.Second, func() error {
			_, err := streams.EvalFilter(ops, map[string]any{"key": c.key, "value": c.value})
			return err
		})
		// Under -race on a busy machine the clock can stop a CPU bomb first.
		if !errors.Is(err, streams.ErrExprBudget) || !strings.Contains(err.Error(), c.want) && !strings.Contains(err.Error(), "longer than") {
			t.Errorf("%s: %v, want the %s budget", c.name, err, c.want)
		}
	}
}

// A map whose value is a shared structure is sized before it is marshalled.
func TestExprMapResultBounded(t *testing.T) {
	src := `let a = [key, key]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; let k = [j, j]; let l = [k, k]; let m = [l, l]; let n = [m, m]; let o = [n, n]; let p = [o, o]; let q = [p, p]; let r = [q, q]; let s = [r, r]; let u = [s, s]; let v = [u, u]; let w = [v, v]; key == "ok" ? key : w`
	spec, r, m := opsHub(t, streams.Ops{Map: src})
	big := strings.Repeat("k", 100)
	spec.send(t, streams.Event{Name: "set", Key: big, Data: map[string]any{"key": big}})
	spec.send(t, streams.Event{Name: "set", Key: "ok", Data: map[string]any{"key": "ok"}})
	if d := string(r.Wait(t, 2)[1].Bytes); !strings.Contains(d, `data: "ok"`) {
		t.Fatalf("got %.200s", d)
	}
	if n := testutil.ToFloat64(m.OperatorErrors.WithLabelValues("map")); n != 1 {
		t.Fatalf("map errors %v, want 1", n)
	}
}
