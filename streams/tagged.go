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
//
// A Durable spec stays Durable (its replayed entries are tagged too), so a
// combined stream resumes it exactly, by position (positions.go).
func Tagged(spec Spec, name string) Spec {
	t := &taggedSpec{Spec: spec, name: name}
	h, healer := spec.(Healer)
	if d, ok := spec.(Durable); ok {
		td := &taggedDurable{t, d}
		if healer {
			return &taggedDurableHealer{td, h}
		}
		return td
	}
	if healer {
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

// taggedDurable is a Durable stream inside a combined stream.
type taggedDurable struct {
	*taggedSpec
	d Durable
}

func (s *taggedDurable) Replay(ctx context.Context, lastID, head string, emit func(Event) bool) (string, error) {
	return s.d.Replay(ctx, lastID, head, func(ev Event) bool {
		if ev.Kind == Data {
			s.tag(&ev)
		}
		return emit(ev)
	})
}

func (s *taggedDurable) CompareIDs(a, b string) int { return s.d.CompareIDs(a, b) }

// taggedDurableHealer is a Durable state stream inside a combined stream.
type taggedDurableHealer struct {
	*taggedDurable
	h Healer
}

func (s *taggedDurableHealer) Heal() (Event, bool) {
	ev, ok := s.h.Heal()
	if ok {
		s.tag(&ev)
	}
	return ev, ok
}
