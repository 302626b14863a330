package streams

import (
	"context"
	"maps"

	"github.com/reactivex/rxgo/v2"
)

// Tagged is one named subscription of a combined stream. Its events keep
// their names (so addEventListener works as on a single stream) and their
// data becomes {"sub": name, "data": <the event's data>}, which a page uses
// to route them. A text payload becomes a JSON string there, exactly.
func Tagged(spec Spec, name string) Spec {
	t := &taggedSpec{Spec: spec, name: name}
	if h, ok := spec.(Healer); ok {
		return &taggedHealer{t, h}
	}
	return t
}

type taggedSpec struct {
	Spec
	name string
}

// TaggedData is the data of an event of a combined stream.
type TaggedData struct {
	Sub  string `json:"sub"`
	Data any    `json:"data"`
}

func (s *taggedSpec) Key() string { return "sub=" + s.name + " " + s.Spec.Key() }

func (s *taggedSpec) Describe() map[string]any {
	d := maps.Clone(s.Spec.Describe())
	d["sub"] = s.name
	return d
}

func (s *taggedSpec) Open(ctx context.Context) rxgo.Observable {
	return s.Spec.Open(ctx).Map(func(_ context.Context, i any) (any, error) {
		ev := i.(Event)
		if ev.Kind == Data {
			s.tag(&ev)
		}
		return ev, nil
	})
}

func (s *taggedSpec) tag(ev *Event) {
	data := ev.Data
	if ev.Raw != nil {
		data = string(ev.Raw)
	}
	ev.Data, ev.Raw = TaggedData{Sub: s.name, Data: data}, nil
}

// taggedHealer keeps a state stream healing inside a combined stream.
type taggedHealer struct {
	*taggedSpec
	h Healer
}

func (s *taggedHealer) Heal() (Event, bool) {
	ev, ok := s.h.Heal()
	if ok {
		s.tag(&ev)
	}
	return ev, ok
}
