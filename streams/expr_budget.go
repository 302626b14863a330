package streams

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/builtin"
)

// Runtime budget of one evaluation. expr's own MemoryBudget counts ranges,
// arrays and maps but not string growth nor time, so programs are patched:
// loop bodies count steps, calls that allocate charge bytes, and the
// builtins that can square their input are checked before they allocate.
const (
	maxExprSteps = 100_000                // loop iterations and scanned elements
	maxExprBytes = 1 << 20                // bytes built by strings, arrays, JSON
	maxExprTime  = 200 * time.Millisecond // backstop for work the counts miss
	scanUnit     = 64                     // bytes of a string scanned per step
)

// ErrExprBudget is why an evaluation over its budget failed.
var ErrExprBudget = errors.New("expression budget exceeded")

// exprBudget is one machine's allowance, reset before every evaluation.
// A pipeline runs its machine sequentially, so it needs no lock.
type exprBudget struct {
	steps, bytes int
	start        time.Time
}

func (b *exprBudget) reset() { b.steps, b.bytes, b.start = 0, 0, time.Now() }

func (b *exprBudget) step(n int) error {
	before := b.steps
	b.steps += n
	if b.steps > maxExprSteps {
		return fmt.Errorf("%w: more than %d steps", ErrExprBudget, maxExprSteps)
	}
	// The clock is read once per 1024 steps: cheap, and enough to stop
	// work the counts underestimate.
	if before>>10 != b.steps>>10 && time.Since(b.start) > maxExprTime {
		return fmt.Errorf("%w: ran longer than %v", ErrExprBudget, maxExprTime)
	}
	return nil
}

func (b *exprBudget) charge(n int) error {
	if n < 0 || n > maxExprBytes-b.bytes {
		return fmt.Errorf("%w: more than %d bytes", ErrExprBudget, maxExprBytes)
	}
	b.bytes += n
	return nil
}

// Names of the guard functions patched in. The expressions clients send are
// first compiled without them, where calling one is an unknown function.
const (
	guardStep  = "__step"  // a loop body: one step
	guardScan  = "__scan"  // a value scanned inside a loop: steps by size
	guardBytes = "__bytes" // a value just built: bytes by its shallow size
	guardPre   = "__pre_"  // + a builtin's name: checked before it runs
)

// preChecked are the builtins whose output can be far larger than their
// input (a square, or a shared structure unrolled): their size is worked
// out before they allocate.
var preChecked = map[string]func(args []any) int{
	"replace": func(args []any) int {
		s, _ := args[0].(string)
		old, _ := args[1].(string)
		repl, _ := args[2].(string)
		n := strings.Count(s, old) // runes+1 for an empty old
		if len(args) == 4 {
			if m, ok := args[3].(int); ok && m >= 0 && m < n {
				n = m
			}
		}
		return len(s) + n*max(len(repl)-len(old), 0)
	},
	"join": func(args []any) int {
		sep := ""
		if len(args) == 2 {
			sep, _ = args[1].(string)
		}
		size, _ := deepSize(args[0], maxExprBytes+1)
		if n := reflect.ValueOf(args[0]); n.Kind() == reflect.Slice {
			size += n.Len() * len(sep)
		}
		return size
	},
	"toJSON":  func(args []any) int { n, _ := deepSize(args[0], maxExprBytes+1); return n },
	"string":  func(args []any) int { n, _ := deepSize(args[0], maxExprBytes+1); return n },
	"flatten": func(args []any) int { n, _ := deepSize(args[0], maxExprBytes+1); return n },
}

// growing are the builtins that build a new string, array or map: what
// they return is charged to the byte budget.
var growing = map[string]bool{
	"trim": true, "trimPrefix": true, "trimSuffix": true, "upper": true, "lower": true,
	"split": true, "splitAfter": true, "fromJSON": true, "toBase64": true, "fromBase64": true,
	"take": true, "keys": true, "values": true, "toPairs": true, "fromPairs": true,
	"reverse": true, "uniq": true, "concat": true, "sort": true, "sortBy": true,
	"filter": true, "map": true, "groupBy": true, "reduce": true,
}

// guardOptions are the functions a patched program calls, bound to b.
func guardOptions(b *exprBudget) []expr.Option {
	opts := []expr.Option{
		expr.Function(guardStep, func(args ...any) (any, error) { return args[0], b.step(1) }),
		expr.Function(guardScan, func(args ...any) (any, error) { return args[0], b.step(scanCost(args[0])) }),
		expr.Function(guardBytes, func(args ...any) (any, error) { return args[0], b.charge(shallowSize(args[0])) }),
	}
	for name, size := range preChecked {
		fn := builtin.Builtins[builtin.Index[name]]
		opts = append(opts, expr.Function(guardPre+name, func(args ...any) (any, error) {
			if err := b.charge(size(args)); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return callBuiltin(fn, args)
		}))
	}
	return opts
}

func callBuiltin(fn *builtin.Function, args []any) (any, error) {
	switch {
	case fn.Fast != nil && len(args) == 1:
		return fn.Fast(args[0]), nil
	case fn.Func != nil:
		return fn.Func(args...)
	case fn.Safe != nil:
		out, _, err := fn.Safe(args...)
		return out, err
	}
	return nil, fmt.Errorf("%s: cannot be called", fn.Name)
}

// shallowSize is what building v cost: its bytes, or 16 per element.
func shallowSize(v any) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case []any:
		return 16 * len(v)
	case map[string]any:
		return 16 * len(v)
	case nil, bool, int, float64:
		return 0
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array:
		return 16 * r.Len()
	}
	return 0
}

func scanCost(v any) int {
	if s, ok := v.(string); ok {
		return 1 + len(s)/scanUnit
	}
	return 1 + shallowSize(v)/16
}

// deepSize estimates v's size as indented JSON, counting shared parts once
// per use, and stops as soon as it passes limit: its time is bounded by
// limit even for a structure that doubles at every level.
func deepSize(v any, limit int) (int, bool) {
	n := 0
	var walk func(v reflect.Value, depth int) bool
	walk = func(v reflect.Value, depth int) bool {
		n += 2*depth + 4 // indentation, separators, the smallest scalar
		if n > limit {
			return false
		}
		switch v.Kind() {
		case reflect.Interface, reflect.Pointer:
			if !v.IsNil() {
				return walk(v.Elem(), depth)
			}
		case reflect.String:
			n += v.Len()
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				if !walk(v.Index(i), depth+1) {
					return false
				}
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				n += len(fmt.Sprint(it.Key().Interface()))
				if !walk(it.Value(), depth+1) {
					return false
				}
			}
		case reflect.Struct:
			n += len(fmt.Sprint(v.Interface()))
		default:
			n += 20 // a number, a bool
		}
		return n <= limit
	}
	ok := walk(reflect.ValueOf(v), 0)
	return n, ok
}
