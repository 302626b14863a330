package streams_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// stateSpec is a memSpec whose stream is a state: Heal reports it.
type stateSpec struct {
	*memSpec
	state atomic.Pointer[streams.Event]
}

func newStateSpec(key, state string) *stateSpec {
	s := &stateSpec{memSpec: newMemSpec(key)}
	s.set(state)
	return s
}

func (s *stateSpec) set(state string) {
	s.state.Store(&streams.Event{Name: "snapshot", Data: map[string]string{"state": state}})
}

func (s *stateSpec) Heal() (streams.Event, bool) { return *s.state.Load(), true }

func TestHubHealsStateStreamsInsteadOfReset(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, ReplaySize: 100})
	defer h.Close()
	spec := newStateSpec("k", "v0")
	r := testkit.NewRecorder()
	s, _ := h.Subscribe(spec, r, "")
	defer s.Close()
	got := r.Wait(t, 2)
	if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected snapshot]" {
		t.Fatalf("new subscriber got %v, want connected then its snapshot", names)
	}
	if got[1].ID != "" || !strings.Contains(testkit.Field(got[1].Bytes, "data"), "v0") {
		t.Fatalf("snapshot frame %q", got[1].Bytes)
	}
	for i := 1; i <= 4; i++ {
		spec.set(fmt.Sprint("v", i))
		spec.emit(t, fmt.Sprint("update", i))
	}
	live := r.Wait(t, 6)

	// Missed one change: the topic keeps its newest frame, which is the replay.
	rr := testkit.NewRecorder()
	ss, _ := h.Subscribe(spec, rr, live[4].ID)
	if names := testkit.EventNames(rr.Wait(t, 2)); fmt.Sprint(names) != "[connected update4]" {
		t.Fatalf("resume got %v", names)
	}
	ss.Close()
	// Missed nothing: nothing to send.
	rr = testkit.NewRecorder()
	ss, _ = h.Subscribe(spec, rr, live[5].ID)
	if names := testkit.EventNames(rr.Wait(t, 1)); fmt.Sprint(names) != "[connected]" || rr.Count() != 1 {
		t.Fatalf("resume at the head got %v", names)
	}
	ss.Close()

	// Missed more (one snapshot instead of every value), or an id the hub
	// cannot vouch for (foreign, not issued yet): a snapshot of now.
	for _, id := range []string{live[3].ID, live[0].ID, "other-5", h.FutureID(10)} {
		rr := testkit.NewRecorder()
		ss, _ := h.Subscribe(spec, rr, id)
		got := rr.Wait(t, 2)
		ss.Close()
		if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected snapshot]" ||
			!strings.Contains(testkit.Field(got[1].Bytes, "data"), "v4") {
			t.Fatalf("id %s: %v %q", id, names, got[1].Bytes)
		}
		if rr.Count() != 2 {
			t.Fatalf("id %s: extra frames", id)
		}
	}
}

func TestHubGroupSendsOneConnectedFirst(t *testing.T) {
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	defer h.Close()
	a, b := newStateSpec("a", "a0"), newStateSpec("b", "b0")
	// b is live with history before the group joins.
	w := testkit.NewRecorder()
	ws, _ := h.Subscribe(b, w, "")
	defer ws.Close()
	b.set("b1")
	b.emit(t, "update-b1")
	w.Wait(t, 3)

	r := testkit.NewRecorder()
	g := &streams.Group{Describe: map[string]any{"stream": "keys"}}
	subs, _ := h.SubscribeAll([]streams.Join{{Spec: a, Group: g}, {Spec: b, Group: g}}, r, "")
	sa, sb := subs[0], subs[1]
	got := r.Wait(t, 3)
	if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected snapshot snapshot]" {
		t.Fatalf("group got %v", names)
	}
	if !strings.Contains(testkit.Field(got[0].Bytes, "data"), `"keys"`) || got[0].ID == "" {
		t.Fatalf("connected %q", got[0].Bytes)
	}
	connectedID := got[0].ID
	a.set("a1")
	a.emit(t, "update-a1")
	r.Wait(t, 4)
	sa.Close()
	sb.Close()

	// Both topics resume from the group's one id: a replays its update, b
	// (nothing since) replays nothing, and neither needs a snapshot.
	b.set("b2")
	b.emit(t, "update-b2")
	w.Wait(t, 4)
	r2 := testkit.NewRecorder()
	g2 := &streams.Group{Describe: map[string]any{"stream": "keys"}}
	subs2, _ := h.SubscribeAll([]streams.Join{{Spec: a, Group: g2}, {Spec: b, Group: g2}}, r2, connectedID)
	s2a, s2b := subs2[0], subs2[1]
	defer s2a.Close()
	defer s2b.Close()
	got = r2.Wait(t, 3)
	if names := testkit.EventNames(got); fmt.Sprint(names) != "[connected update-a1 update-b2]" {
		t.Fatalf("group resume got %v", names)
	}
	if got[0].ID != "" {
		t.Fatalf("connected of a resume carries id %q", got[0].ID)
	}
}
