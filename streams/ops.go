package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/reactivex/rxgo/v2"
)

// Ops are the operators a client may put after a source, applied in this
// order. They run once per distinct stream, never once per client.
type Ops struct {
	// Filter is a boolean expression over the event; events for which it
	// is false, or fails (a missing field), are dropped.
	Filter string
	// Map is an expression whose value becomes the event's data.
	Map string
	// Throttle lets at most one event per key through per interval: the
	// first at once, the latest of the rest when the interval ends.
	Throttle time.Duration
	// BufferTime and BufferCount batch events into one "batch" event,
	// whichever limit is reached first.
	BufferTime  time.Duration
	BufferCount int
}

// Expression limits: a filter is evaluated for every event of a stream, so
// its size is bounded here, its cost by the static refusals of
// expr_limits.go and the per-evaluation budget of expr_budget.go.
const (
	maxExprNodes     = 256
	maxExprMemory    = 10000
	maxExprLength    = 1024
	MaxBufferCount   = 10000
	minOperatorDelay = 10 * time.Millisecond
	maxOperatorDelay = time.Hour
)

// ExprError is an expression that does not compile, with its position.
type ExprError struct {
	Op      string // "filter" or "map"
	Line    int
	Column  int
	Message string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("%s: %s (line %d, column %d)", e.Op, e.Message, e.Line, e.Column)
}

// Operators are compiled Ops, ready to apply.
type Operators struct {
	ops           Ops
	filter, mapTo *compiledExpr
	key           string
}

// Compile checks and compiles o. It returns nil, nil when o is empty.
func (o Ops) Compile() (*Operators, error) {
	if o == (Ops{}) {
		return nil, nil
	}
	c := &Operators{ops: o}
	var err error
	var parts []string
	if o.Filter != "" {
		if c.filter, err = compileExpr("filter", o.Filter, expr.AsBool()); err != nil {
			return nil, err
		}
		parts = append(parts, "filter="+c.filter.plain.Node().String())
	}
	if o.Map != "" {
		if c.mapTo, err = compileExpr("map", o.Map); err != nil {
			return nil, err
		}
		parts = append(parts, "map="+c.mapTo.plain.Node().String())
	}
	if o.Throttle != 0 {
		if err := checkDelay("throttle", o.Throttle); err != nil {
			return nil, err
		}
		parts = append(parts, "throttle="+o.Throttle.String())
	}
	if o.BufferTime != 0 {
		if err := checkDelay("buffer", o.BufferTime); err != nil {
			return nil, err
		}
	}
	if o.BufferCount < 0 || o.BufferCount > MaxBufferCount {
		return nil, fmt.Errorf("buffer: a count must be from 1 to %d", MaxBufferCount)
	}
	if o.BufferTime != 0 || o.BufferCount != 0 {
		parts = append(parts, "buffer="+o.BufferTime.String()+","+strconv.Itoa(o.BufferCount))
	}
	c.key = strings.Join(parts, " ")
	return c, nil
}

func checkDelay(op string, d time.Duration) error {
	if d < minOperatorDelay || d > maxOperatorDelay {
		return fmt.Errorf("%s: an interval must be from %v to %v", op, minOperatorDelay, maxOperatorDelay)
	}
	return nil
}

func compileExpr(op, src string, opts ...expr.Option) (*compiledExpr, error) {
	if len(src) > maxExprLength {
		return nil, &ExprError{Op: op, Line: 1, Column: maxExprLength, Message: "expression is longer than " + strconv.Itoa(maxExprLength) + " bytes"}
	}
	opts = append(opts, expr.AllowUndefinedVariables(), expr.MaxNodes(maxExprNodes),
		expr.DisableBuiltin("repeat")) // the one builtin that allocates without bound
	p, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &ExprError{Op: op, Line: fe.Line, Column: fe.Column + 1, Message: fe.Message}
		}
		return nil, &ExprError{Op: op, Line: 1, Column: 1, Message: err.Error()}
	}
	// Events hold no functions, so a call of a name that is not a builtin
	// can only fail at run time: say so now.
	var unknown unknownCalls
	node := p.Node()
	ast.Walk(&node, &unknown)
	if unknown.name != "" {
		line, col := sourcePosition(src, unknown.at)
		return nil, &ExprError{Op: op, Line: line, Column: col, Message: "unknown function " + unknown.name}
	}
	tree, err := parser.Parse(src)
	if err != nil { // compiled above, so this does not happen
		return nil, &ExprError{Op: op, Line: 1, Column: 1, Message: err.Error()}
	}
	if at, why := staticLimits(tree.Node); at != nil {
		line, col := sourcePosition(src, at.Location().From)
		return nil, &ExprError{Op: op, Line: line, Column: col, Message: why}
	}
	return newCompiledExpr(op, src, p, opts)
}

type unknownCalls struct {
	name string
	at   int
}

func (u *unknownCalls) Visit(n *ast.Node) {
	if call, ok := (*n).(*ast.CallNode); ok && u.name == "" {
		if id, ok := call.Callee.(*ast.IdentifierNode); ok {
			u.name, u.at = id.Value, call.Location().From
		}
	}
}

// sourcePosition turns a rune offset into a line and a 1-based column.
func sourcePosition(src string, offset int) (line, col int) {
	line, col = 1, 1
	for i, r := range []rune(src) {
		if i >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// Key is the operators' canonical form: expressions as parsed, so spacing
// does not split streams.
func (c *Operators) Key() string { return c.key }

// WithOps returns spec followed by ops (spec itself when ops is nil).
//
// On a Durable spec, stateless operators (filter, map) keep it Durable:
// every process computes the same output for the same entries, so live
// events keep the source's ids and a replay applies the same operators to
// the history. Stateful ones (throttle, buffer) make it an ordinary stream:
// what they emit depends on when this process's pipeline started, so its
// events are numbered by the hub like any other and a resume on another
// process gets "reset".
func WithOps(spec Spec, ops *Operators, m *Metrics) (Spec, error) {
	if ops == nil {
		return spec, nil
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	o := &opsSpec{Spec: spec, ops: ops, m: m}
	h, healer := spec.(Healer)
	if d, ok := spec.(Durable); ok {
		if !ops.Stateless() {
			o.unnumber = true // and no longer Durable: opsSpec hides Replay
		} else {
			od := &opsDurable{o, d}
			if healer {
				return &opsDurableHealer{od, h}, nil
			}
			return od, nil
		}
	}
	if healer {
		return &opsHealer{o, h}, nil
	}
	return o, nil
}

// Stateless reports whether the operators are filter and map only: each
// event's output depends on that event alone.
func (c *Operators) Stateless() bool {
	return c.ops.Throttle == 0 && c.ops.BufferTime == 0 && c.ops.BufferCount == 0
}

// opsHealer keeps a state stream healing through its operators: the
// snapshot is filtered and mapped like any event (throttle and buffer do
// not apply to one snapshot).
type opsHealer struct {
	*opsSpec
	h Healer
}

func (s *opsHealer) Heal() (Event, bool) {
	ev, ok := s.h.Heal()
	if !ok {
		return ev, false
	}
	return s.applyOnce(ev)
}

// applyOnce filters and maps one event outside the pipeline (a snapshot, a
// replayed entry), on machines of its own: the pipeline's run elsewhere.
// It reports false when the event is dropped.
func (s *opsSpec) applyOnce(ev Event) (Event, bool) {
	o := s.ops
	if o.filter != nil {
		keep, err := o.filter.runOnce(exprEnv(ev))
		if err != nil {
			s.m.OperatorErrors.WithLabelValues("filter").Inc()
		}
		if err != nil || keep != true {
			return ev, false
		}
	}
	if o.mapTo != nil {
		run := func(ev Event) (any, error) {
			out, err := o.mapTo.runOnce(exprEnv(ev))
			if err != nil {
				s.m.OperatorErrors.WithLabelValues("map").Inc()
			}
			return out, err
		}
		if !mapEvent(&ev, run, s.m) {
			return ev, false
		}
	}
	return ev, true
}

// opsDurable is a Durable stream behind stateless operators: its replay
// goes through the same filter and map as its live events.
type opsDurable struct {
	*opsSpec
	d Durable
}

// Replay filters and maps the replayed entries; Ready and Gap pass, and the
// position is the source's: entries the filter drops are behind it too.
func (s *opsDurable) Replay(ctx context.Context, lastID, head string, emit func(Event) bool) (string, error) {
	return s.d.Replay(ctx, lastID, head, func(ev Event) bool {
		if ev.Kind != Data {
			return emit(ev)
		}
		out, ok := s.applyOnce(ev)
		if !ok {
			return true
		}
		return emit(out)
	})
}

func (s *opsDurable) CompareIDs(a, b string) int { return s.d.CompareIDs(a, b) }

// opsDurableHealer is a Durable state stream behind stateless operators.
type opsDurableHealer struct {
	*opsDurable
	h Healer
}

func (s *opsDurableHealer) Heal() (Event, bool) {
	ev, ok := s.h.Heal()
	if !ok {
		return ev, false
	}
	return s.applyOnce(ev)
}

type opsSpec struct {
	Spec
	ops *Operators
	m   *Metrics
	// unnumber clears the source's ids at the end of the pipeline: a
	// Durable source behind stateful operators, whose output the hub
	// numbers like any other stream's.
	unnumber bool
}

func (s *opsSpec) Key() string { return s.Spec.Key() + " | " + s.ops.key }

func (s *opsSpec) Describe() map[string]any {
	d := map[string]any{}
	for k, v := range s.Spec.Describe() {
		d[k] = v
	}
	o := s.ops.ops
	if o.Filter != "" {
		d["filter"] = o.Filter
	}
	if o.Map != "" {
		d["map"] = o.Map
	}
	if o.Throttle != 0 {
		d["throttle_ms"] = o.Throttle.Milliseconds()
	}
	if o.BufferTime != 0 {
		d["buffer_ms"] = o.BufferTime.Milliseconds()
	}
	if o.BufferCount != 0 {
		d["buffer_count"] = o.BufferCount
	}
	return d
}

func (s *opsSpec) Open(ctx context.Context) rxgo.Observable {
	obs := s.Spec.Open(ctx)
	o := s.ops
	if o.filter != nil {
		run := s.evaluator(o.filter, "filter")
		obs = obs.Filter(func(i any) bool {
			ev := i.(Event)
			if ev.Kind != Data {
				return true
			}
			keep, err := run(ev)
			return err == nil && keep == true
		})
	}
	if o.mapTo != nil {
		run := s.evaluator(o.mapTo, "map")
		obs = obs.Map(func(_ context.Context, i any) (any, error) {
			ev := i.(Event)
			if ev.Kind == Data && !mapEvent(&ev, run, s.m) {
				ev.Kind = dropped
			}
			return ev, nil
		}).Filter(func(i any) bool { return i.(Event).Kind != dropped })
	}
	if t := o.ops.Throttle; t > 0 {
		obs = stage(obs, func(in <-chan rxgo.Item, out chan<- rxgo.Item) { throttle(t, in, out) })
	}
	if o.ops.BufferTime > 0 || o.ops.BufferCount > 0 {
		d, n := o.ops.BufferTime, o.ops.BufferCount
		obs = stage(obs, func(in <-chan rxgo.Item, out chan<- rxgo.Item) { buffer(d, n, in, out) })
	}
	if s.unnumber {
		obs = stage(obs, func(in <-chan rxgo.Item, out chan<- rxgo.Item) {
			for item := range in {
				if ev, ok := item.V.(Event); ok {
					ev.ID = ""
					item = rxgo.Of(ev)
				}
				out <- item
			}
		})
	}
	return obs
}

// evaluator runs an expression with one reused machine: pipelines are
// sequential, so one machine per operator is safe and saves an allocation
// per event. An evaluation over its budget fails alone and is counted.
func (s *opsSpec) evaluator(e *compiledExpr, op string) func(Event) (any, error) {
	machine := e.machine()
	errs := s.m.OperatorErrors.WithLabelValues(op)
	return func(ev Event) (any, error) {
		out, err := machine.run(exprEnv(ev))
		if err != nil {
			errs.Inc()
		}
		return out, err
	}
}

// mapEvent replaces ev's data with the map expression's value; it reports
// false when the value cannot be sent as JSON.
func mapEvent(ev *Event, run func(Event) (any, error), m *Metrics) bool {
	out, err := run(*ev)
	if err != nil {
		return false
	}
	// Sized before it is marshalled: a small program can return a shared
	// structure whose JSON doubles at every level.
	if _, ok := deepSize(out, maxExprBytes); !ok {
		m.OperatorErrors.WithLabelValues("map").Inc()
		return false
	}
	if _, err := json.Marshal(out); err != nil {
		m.OperatorErrors.WithLabelValues("map").Inc()
		return false
	}
	ev.Data, ev.Raw = out, nil
	return true
}

// exprEnv is what expressions see: the fields of the event's JSON data,
// "data" for the whole of it, "event" for the event name unless the data
// has its own, and a "value" holding JSON text decoded.
func exprEnv(ev Event) map[string]any {
	env := map[string]any{}
	var data any
	if ev.Raw != nil {
		if json.Unmarshal(ev.Raw, &data) != nil {
			data = string(ev.Raw)
		}
	} else if b, err := json.Marshal(ev.Data); err == nil {
		_ = json.Unmarshal(b, &data)
	}
	if obj, ok := data.(map[string]any); ok {
		for k, v := range obj {
			env[k] = v
		}
	}
	if v, ok := env["value"].(string); ok && (strings.HasPrefix(v, "{") || strings.HasPrefix(v, "[")) {
		var decoded any
		if json.Unmarshal([]byte(v), &decoded) == nil {
			env["value"] = decoded
		}
	}
	env["data"] = data
	if _, ok := env["event"]; !ok {
		env["event"] = ev.Name
	}
	if _, ok := env["key"]; !ok && ev.Key != "" {
		env["key"] = ev.Key
	}
	return env
}

// stage runs fn between obs and a new Observable. fn returns once in is
// closed; out is closed after it.
func stage(obs rxgo.Observable, fn func(in <-chan rxgo.Item, out chan<- rxgo.Item)) rxgo.Observable {
	in := obs.Observe()
	out := make(chan rxgo.Item)
	go func() {
		defer close(out)
		fn(in, out)
	}()
	return rxgo.FromChannel(out)
}
