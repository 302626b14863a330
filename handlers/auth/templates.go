package auth

import (
	"fmt"
	"strings"
)

// Placeholders of --spring-session-* templates.
const (
	phNamespace = "{namespace}"
	phSession   = "{session}"
	phPrincipal = "{principal}"
)

// templates are selectors with placeholders, one list per scope.
type templates []string

// parseTemplates checks every template: only the three placeholders, and
// a valid selector once they are filled in with a sample value (so a
// placeholder after the '*' is refused here, not per request).
func parseTemplates(what string, list []string) (templates, error) {
	for _, t := range list {
		rest := t
		for _, ph := range []string{phNamespace, phSession, phPrincipal} {
			rest = strings.ReplaceAll(rest, ph, "")
		}
		if strings.ContainsAny(rest, "{}") {
			return nil, fmt.Errorf("%s: %q: the only placeholders are {namespace}, {session} and {principal}", what, t)
		}
	}
	sample := templates(list).fill("ns", "id", "p", true)
	if len(sample) != len(list) {
		return nil, fmt.Errorf("%s: a template is empty", what)
	}
	if _, err := ParseSelectors(what, sample); err != nil {
		return nil, err
	}
	return templates(list), nil
}

// fill substitutes the placeholders; a template with {principal} is left
// out when the session has no principal. The values come checked: no glob
// character, so a substitution never widens a template.
func (ts templates) fill(namespace, session, principal string, hasPrincipal bool) Selectors {
	r := strings.NewReplacer(phNamespace, namespace, phSession, session, phPrincipal, principal)
	out := make(Selectors, 0, len(ts))
	for _, t := range ts {
		if !hasPrincipal && strings.Contains(t, phPrincipal) {
			continue
		}
		if s := r.Replace(t); s != "" {
			out = append(out, s)
		}
	}
	return out
}
