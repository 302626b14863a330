package streams

// EvalFilter runs ops's filter once on env, as a state stream's heal does.
func EvalFilter(ops *Operators, env map[string]any) (any, error) {
	return ops.filter.runOnce(env)
}

// FilterRunner evaluates ops's filter as a pipeline does: one machine,
// reused.
func FilterRunner(ops *Operators) func(env map[string]any) (any, error) {
	return ops.filter.machine().run
}
