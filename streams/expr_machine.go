package streams

import (
	"fmt"
	"slices"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// compiledExpr is one client expression: the program as written (for the
// canonical key and its errors) and a pool of machines that run it within
// the budget of expr_budget.go.
type compiledExpr struct {
	plain   *vm.Program
	src     string
	opts    []expr.Option
	guarded bool // the budget patch changed the program
	pool    sync.Pool
}

// exprMachine is a VM with its program; a guarded program's guards are
// bound to the machine's own budget, so one machine runs one evaluation at
// a time.
type exprMachine struct {
	vm     vm.VM
	prog   *vm.Program
	budget *exprBudget
}

func newCompiledExpr(op, src string, plain *vm.Program, opts []expr.Option) (*compiledExpr, error) {
	e := &compiledExpr{plain: plain, src: src, opts: opts}
	m, patched, err := e.compileGuarded()
	if err != nil {
		return nil, &ExprError{Op: op, Line: 1, Column: 1, Message: err.Error()}
	}
	e.guarded = patched
	if patched {
		e.pool.Put(m)
	}
	return e, nil
}

// compileGuarded compiles the expression with the budget patched in and
// bound to a new budget. Programs with no loop and no growth are left as
// written, at no cost per event.
func (e *compiledExpr) compileGuarded() (*exprMachine, bool, error) {
	b := &exprBudget{}
	patch := &budgetPatch{}
	opts := append(slices.Clone(e.opts), guardOptions(b)...)
	opts = append(opts, expr.Patch(patch))
	p, err := expr.Compile(e.src, opts...)
	if err != nil {
		return nil, false, fmt.Errorf("with its budget: %w", err)
	}
	return &exprMachine{vm: vm.VM{MemoryBudget: maxExprMemory}, prog: p, budget: b}, patch.applied, nil
}

// machine returns a machine of its own to the caller.
func (e *compiledExpr) machine() *exprMachine {
	if !e.guarded {
		return &exprMachine{vm: vm.VM{MemoryBudget: maxExprMemory}, prog: e.plain}
	}
	if m, ok := e.pool.Get().(*exprMachine); ok {
		return m
	}
	m, _, err := e.compileGuarded()
	if err != nil { // it compiled in newCompiledExpr with the same options
		panic(err)
	}
	return m
}

// runOnce evaluates env on a pooled machine.
func (e *compiledExpr) runOnce(env map[string]any) (any, error) {
	m := e.machine()
	if e.guarded { // the pool holds only machines whose guards are bound to them
		defer e.pool.Put(m)
	}
	return m.run(env)
}

func (m *exprMachine) run(env map[string]any) (any, error) {
	if m.budget != nil {
		m.budget.reset()
	}
	return m.vm.Run(m.prog, env)
}
