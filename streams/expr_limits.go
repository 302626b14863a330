package streams

import (
	"fmt"

	"github.com/expr-lang/expr/ast"
)

// Static refusals: costs visible in an expression's text are refused when
// it is parsed (400), before any event reaches it. What is not visible
// there (sizes that come from the data) is left to the runtime budget.

// staticLimits returns the first node whose cost is over a limit, and why.
func staticLimits(root ast.Node) (ast.Node, string) {
	var at ast.Node
	var why string
	var visit func(n ast.Node)
	visit = func(n ast.Node) {
		if b, ok := n.(*ast.BuiltinNode); ok && b.Name == "reduce" && len(b.Arguments) > 1 && at == nil {
			if p, ok := b.Arguments[1].(*ast.PredicateNode); ok && accCopies(p.Node, nil) > 1 {
				at, why = b, "reduce uses its accumulator more than once in what it returns: the result could double at every step"
			}
		}
		for _, c := range children(n) {
			visit(*c)
		}
	}
	visit(root)
	if at != nil {
		return at, why
	}
	loopSteps(root, func(n ast.Node, steps int) {
		if at == nil {
			at, why = n, fmt.Sprintf("nested loops run up to %d steps per event, over the limit of %d", steps, maxExprSteps)
		}
	})
	return at, why
}

// loopSteps is how many loop iterations n runs, counting a collection whose
// size is not in the text as one element; over calls each loop whose total
// passes maxExprSteps.
func loopSteps(n ast.Node, over func(ast.Node, int)) int {
	b, ok := n.(*ast.BuiltinNode)
	if !ok || len(b.Arguments) == 0 {
		total := 0
		for _, c := range children(n) {
			total = satAdd(total, loopSteps(*c, over))
		}
		return total
	}
	size := staticLen(b.Arguments[0])
	total := 0
	for _, a := range b.Arguments {
		if p, ok := a.(*ast.PredicateNode); ok {
			total = satAdd(total, satMul(size, satAdd(1, loopSteps(p.Node, over))))
		} else {
			total = satAdd(total, loopSteps(a, over))
		}
	}
	if total > maxExprSteps {
		over(n, total)
	}
	return total
}

// staticLen is a collection's length when the text says it: a range of
// integer literals or an array literal.
func staticLen(n ast.Node) int {
	switch n := n.(type) {
	case *ast.ArrayNode:
		return len(n.Nodes)
	case *ast.BinaryNode:
		from, ok1 := intLiteral(n.Left)
		to, ok2 := intLiteral(n.Right)
		if n.Operator == ".." && ok1 && ok2 {
			return int(min(max(to-from+1, 0), 1<<40))
		}
	}
	return 1
}

func intLiteral(n ast.Node) (int64, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return int64(n.Value), true
	case *ast.UnaryNode:
		if v, ok := intLiteral(n.Node); ok && n.Operator == "-" {
			return -v, true
		}
	}
	return 0, false
}

const satMax = 1 << 50

func satAdd(a, b int) int { return min(a+b, satMax) }

func satMul(a, b int) int {
	if a != 0 && b > satMax/a {
		return satMax
	}
	return a * b
}

// scalarBuiltins return numbers, booleans or one element of their input:
// never more copies of the accumulator than they were given.
var scalarBuiltins = map[string]bool{
	"len": true, "type": true, "abs": true, "ceil": true, "floor": true, "round": true,
	"int": true, "float": true, "all": true, "none": true, "any": true, "one": true,
	"count": true, "sum": true, "mean": true, "median": true, "indexOf": true,
	"lastIndexOf": true, "hasPrefix": true, "hasSuffix": true, "findIndex": true,
	"findLastIndex": true, "now": true, "duration": true, "date": true, "timezone": true,
	"bitand": true, "bitor": true, "bitxor": true, "bitnand": true, "bitnot": true,
	"bitshl": true, "bitshr": true, "bitushr": true,
}

// elementBuiltins return one element (or a part) of their first argument.
var elementBuiltins = map[string]bool{
	"first": true, "last": true, "get": true, "find": true, "findLast": true,
	"max": true, "min": true, "trim": true, "trimPrefix": true, "trimSuffix": true,
	"take": true, "filter": true,
}

// accCopies is how many copies of the reduce accumulator (#acc) the value
// of n can hold: more than one in a reduce step means the accumulator can
// double at every step (strings, arrays), and expr's memory budget does
// not count strings.
func accCopies(n ast.Node, vars map[string]int) int {
	switch n := n.(type) {
	case *ast.PointerNode:
		if n.Name == "acc" {
			return 1
		}
		return 0
	case *ast.IdentifierNode:
		return vars[n.Value]
	case *ast.VariableDeclaratorNode:
		inner := map[string]int{}
		for k, v := range vars {
			inner[k] = v
		}
		inner[n.Name] = accCopies(n.Value, vars)
		return accCopies(n.Expr, inner)
	case *ast.SequenceNode:
		if len(n.Nodes) == 0 {
			return 0
		}
		return accCopies(n.Nodes[len(n.Nodes)-1], vars)
	case *ast.ConditionalNode:
		return max(accCopies(n.Exp1, vars), accCopies(n.Exp2, vars))
	case *ast.UnaryNode:
		return 0
	case *ast.BinaryNode:
		switch n.Operator {
		case "+":
			return accCopies(n.Left, vars) + accCopies(n.Right, vars)
		case "??":
			return max(accCopies(n.Left, vars), accCopies(n.Right, vars))
		}
		return 0 // comparisons, logic and arithmetic give a number or a boolean
	case *ast.MemberNode:
		return accCopies(n.Node, vars)
	case *ast.SliceNode:
		return accCopies(n.Node, vars)
	case *ast.ChainNode:
		return accCopies(n.Node, vars)
	case *ast.BuiltinNode:
		if scalarBuiltins[n.Name] {
			return 0
		}
		if elementBuiltins[n.Name] && len(n.Arguments) > 0 {
			return accCopies(n.Arguments[0], vars)
		}
		total := 0
		for _, a := range n.Arguments {
			if p, ok := a.(*ast.PredicateNode); ok {
				if n.Name == "reduce" {
					continue // its own #acc
				}
				if accCopies(p.Node, vars) > 0 {
					return 2 // one copy per element
				}
				continue
			}
			total += accCopies(a, vars)
		}
		return total
	}
	total := 0
	for _, c := range children(n) {
		total += accCopies(*c, vars)
	}
	return total
}
