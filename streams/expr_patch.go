package streams

import (
	"strings"

	"github.com/expr-lang/expr/ast"
)

// budgetPatch puts the guards into a parsed program. It runs as expr.Patch,
// which visits children before their parents.
type budgetPatch struct{ applied bool }

func (p *budgetPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		// + concatenates strings and arrays; with a number literal on one
		// side it can only add numbers.
		if n.Operator == "+" && !isNumber(n.Left) && !isNumber(n.Right) {
			p.wrap(node, guardBytes)
		}
	case *ast.BuiltinNode:
		if _, ok := preChecked[n.Name]; ok {
			call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: guardPre + n.Name}, Arguments: n.Arguments}
			call.SetLocation(n.Location())
			ast.Patch(node, call)
			p.applied = true
		} else if growing[n.Name] {
			p.wrap(node, guardBytes)
		}
	case *ast.PredicateNode:
		// A loop body: what it scans costs steps, and so does each run.
		// Nested loops were patched first and are not scanned again.
		scanInLoop(&n.Node, p)
		p.wrap(&n.Node, guardStep)
	}
}

func (p *budgetPatch) wrap(node *ast.Node, guard string) {
	call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: guard}, Arguments: []ast.Node{*node}}
	call.SetLocation((*node).Location())
	*node = call // ast.Patch would copy the type of the old node onto a guard that returns any
	p.applied = true
}

// scanInLoop wraps the operands of string and collection work inside a
// loop body with a step charge by their size: outside loops such work runs
// once per evaluation, inside it runs once per step.
func scanInLoop(node *ast.Node, p *budgetPatch) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		return
	case *ast.BinaryNode:
		switch n.Operator {
		case "matches", "contains", "startsWith", "endsWith", "in", "not in", "==", "!=", "+":
			scanOperand(&n.Left, p)
			scanOperand(&n.Right, p)
			return
		}
	case *ast.BuiltinNode:
		for i := range n.Arguments {
			scanOperand(&n.Arguments[i], p)
		}
		return
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && strings.HasPrefix(id.Value, "__") {
			for i := range n.Arguments {
				scanOperand(&n.Arguments[i], p)
			}
			return
		}
	}
	for _, c := range children(*node) {
		scanInLoop(c, p)
	}
}

func scanOperand(node *ast.Node, p *budgetPatch) {
	scanInLoop(node, p)
	switch (*node).(type) {
	case *ast.PredicateNode, *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return // constants cost nothing, and a constant regexp stays precompiled
	}
	p.wrap(node, guardScan)
}

func isNumber(n ast.Node) bool {
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		return true
	}
	return false
}

// children are pointers to n's direct subexpressions.
func children(n ast.Node) []*ast.Node {
	switch n := n.(type) {
	case *ast.UnaryNode:
		return []*ast.Node{&n.Node}
	case *ast.BinaryNode:
		return []*ast.Node{&n.Left, &n.Right}
	case *ast.ChainNode:
		return []*ast.Node{&n.Node}
	case *ast.MemberNode:
		return []*ast.Node{&n.Node, &n.Property}
	case *ast.SliceNode:
		out := []*ast.Node{&n.Node}
		if n.From != nil {
			out = append(out, &n.From)
		}
		if n.To != nil {
			out = append(out, &n.To)
		}
		return out
	case *ast.CallNode:
		out := []*ast.Node{&n.Callee}
		for i := range n.Arguments {
			out = append(out, &n.Arguments[i])
		}
		return out
	case *ast.BuiltinNode:
		return ptrs(n.Arguments)
	case *ast.PredicateNode:
		return []*ast.Node{&n.Node}
	case *ast.VariableDeclaratorNode:
		return []*ast.Node{&n.Value, &n.Expr}
	case *ast.SequenceNode:
		return ptrs(n.Nodes)
	case *ast.ConditionalNode:
		return []*ast.Node{&n.Cond, &n.Exp1, &n.Exp2}
	case *ast.ArrayNode:
		return ptrs(n.Nodes)
	case *ast.MapNode:
		return ptrs(n.Pairs)
	case *ast.PairNode:
		return []*ast.Node{&n.Key, &n.Value}
	}
	return nil
}

func ptrs(nodes []ast.Node) []*ast.Node {
	out := make([]*ast.Node, len(nodes))
	for i := range nodes {
		out[i] = &nodes[i]
	}
	return out
}
