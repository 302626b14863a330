package streams_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func (s *memSpec) send(t *testing.T, ev streams.Event) {
	t.Helper()
	select {
	case s.items <- ev:
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline not draining")
	}
}

func sensor(key string, temp any) streams.Event {
	value := fmt.Sprintf(`{"temp":%v}`, temp)
	if temp == nil {
		value = `{}`
	}
	return streams.Event{Name: "set", Key: key, Data: map[string]any{"key": key, "event": "set", "value": value}}
}

// opsHub subscribes one recorder to spec with ops and waits for connected.
func opsHub(t *testing.T, ops streams.Ops) (*memSpec, *testkit.Recorder, *streams.Metrics) {
	t.Helper()
	compiled, err := ops.Compile()
	if err != nil {
		t.Fatal(err)
	}
	m := streams.NewMetrics(nil)
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour, Metrics: m})
	t.Cleanup(h.Close)
	spec := newMemSpec("s")
	r := testkit.NewRecorder()
	withOps, err := streams.WithOps(spec, compiled, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(withOps, r, ""); err != nil {
		t.Fatal(err)
	}
	r.Wait(t, 1)
	return spec, r, m
}

func TestFilter(t *testing.T) {
	spec, r, m := opsHub(t, streams.Ops{Filter: `event == "set" && value.temp > 30`})
	spec.send(t, sensor("s:1", 20))
	spec.send(t, sensor("s:2", nil)) // value.temp missing: false, not an error for the stream
	spec.send(t, streams.Event{Name: "del", Key: "s:3", Data: map[string]any{"key": "s:3", "event": "del"}})
	spec.send(t, sensor("s:4", 31))
	got := r.Wait(t, 2)
	if d := testkit.Field(got[1].Bytes, "data"); !strings.Contains(d, `"key":"s:4"`) {
		t.Fatalf("filter passed %s", d)
	}
	spec.send(t, sensor("s:5", 40))
	if d := testkit.Field(r.Wait(t, 3)[2].Bytes, "data"); !strings.Contains(d, `"key":"s:5"`) {
		t.Fatalf("filter passed %s, want only s:5 after s:4", d)
	}
	if n := testutil.ToFloat64(m.OperatorErrors.WithLabelValues("filter")); n < 1 {
		t.Fatalf("a filter failing on a missing field was not counted (%v)", n)
	}
}

func TestFilterCompileErrors(t *testing.T) {
	for _, c := range []struct {
		src  string
		col  int
		kind string
	}{
		{`event == `, 10, "filter"},
		{`key matches "("`, 1, "filter"},
		{`1 + 2`, 1, "filter"}, // not a boolean
		{strings.Repeat("a", 2000), 1024, "filter"},
		{`repeat("x", 1000000000) != ""`, 1, "filter"},
		{`nosuchfunction(key)`, 1, "filter"},
	} {
		_, err := streams.Ops{Filter: c.src}.Compile()
		var ee *streams.ExprError
		if !errors.As(err, &ee) || ee.Op != c.kind || ee.Line != 1 || ee.Column < 1 {
			t.Errorf("%q: %v", c.src, err)
		}
	}
	if _, err := (streams.Ops{Map: `{"a": `}).Compile(); err == nil || !strings.Contains(err.Error(), "map:") {
		t.Fatalf("map error %v", err)
	}
	deep := strings.Repeat("1 + ", 300) + "1 > 0"
	if _, err := (streams.Ops{Filter: deep}).Compile(); err == nil {
		t.Fatal("an expression over the node budget compiled")
	}
}

func TestMap(t *testing.T) {
	spec, r, m := opsHub(t, streams.Ops{Map: `{"k": key, "t": value.temp}`})
	spec.send(t, sensor("s:1", 21.5))
	if d := testkit.Field(r.Wait(t, 2)[1].Bytes, "data"); d != `{"k":"s:1","t":21.5}` {
		t.Fatalf("map gave %s", d)
	}
	// A value JSON cannot carry (NaN) is dropped and counted, never sent broken.
	spec2, r2, m2 := opsHub(t, streams.Ops{Map: `value?.temp == 0 ? 0.0 / 0.0 : value?.temp`})
	_ = m
	spec2.send(t, sensor("s:1", 0))
	spec2.send(t, sensor("s:1", 5))
	spec2.send(t, sensor("s:1", nil)) // a missing field maps to null
	got := r2.Wait(t, 3)
	if d := testkit.Field(got[1].Bytes, "data"); d != "5" {
		t.Fatalf("map gave %s, want 5 (the NaN dropped)", d)
	}
	if d := testkit.Field(got[2].Bytes, "data"); d != "null" {
		t.Fatalf("map over a missing field gave %s, want null", d)
	}
	if n := testutil.ToFloat64(m2.OperatorErrors.WithLabelValues("map")); n != 1 {
		t.Fatalf("map errors counted %v, want 1 (the NaN)", n)
	}
}

func TestThrottleKeepsTrailing(t *testing.T) {
	spec, r, _ := opsHub(t, streams.Ops{Throttle: 300 * time.Millisecond})
	for _, v := range []int{1, 2, 3} {
		spec.send(t, sensor("a", v))
	}
	spec.send(t, sensor("b", 9)) // another key has its own window
	got := r.Wait(t, 4)
	var seen []string
	for _, f := range got[1:] {
		seen = append(seen, testkit.Field(f.Bytes, "data"))
	}
	want := []string{`"value":"{\"temp\":1}"`, `"key":"b"`, `"value":"{\"temp\":3}"`}
	for i, w := range want {
		if !strings.Contains(seen[i], w) {
			t.Fatalf("throttled sequence %v, want %v", seen, want)
		}
	}
	// After a quiet window, the next event passes at once again.
	spec.send(t, sensor("a", 4))
	if d := testkit.Field(r.Wait(t, 5)[4].Bytes, "data"); !strings.Contains(d, `temp\":4`) {
		t.Fatalf("after the window: %s", d)
	}
}

func TestBufferByCountTimeAndGap(t *testing.T) {
	spec, r, _ := opsHub(t, streams.Ops{BufferCount: 3, BufferTime: 200 * time.Millisecond})
	for _, k := range []string{"a", "b", "c"} { // count
		spec.send(t, sensor(k, 1))
	}
	got := r.Wait(t, 2)
	if testkit.Field(got[1].Bytes, "event") != "batch" || strings.Count(testkit.Field(got[1].Bytes, "data"), `{"event":"set","data"`) != 3 {
		t.Fatalf("count flush: %q", got[1].Bytes)
	}
	spec.send(t, sensor("d", 1)) // time
	if d := testkit.Field(r.Wait(t, 3)[2].Bytes, "data"); strings.Count(d, `{"event":"set","data"`) != 1 || !strings.Contains(d, `"key":"d"`) {
		t.Fatalf("time flush: %s", d)
	}
	spec.send(t, sensor("e", 1)) // gap: what is held goes out before the reset
	spec.send(t, streams.Event{Kind: streams.Gap, Reason: "test"})
	got = r.Wait(t, 5)
	if names := testkit.EventNames(got[3:]); fmt.Sprint(names) != "[batch reset]" {
		t.Fatalf("gap flush: %v", names)
	}
}

func TestOpsKeyNormalised(t *testing.T) {
	a, err := streams.Ops{Filter: `event=="set"  &&  key  matches "^s"`, Throttle: time.Second}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := streams.Ops{Filter: `event == "set" && key matches "^s"`, Throttle: 1000 * time.Millisecond}.Compile()
	if a.Key() != b.Key() {
		t.Fatalf("%q != %q", a.Key(), b.Key())
	}
	if none, err := (streams.Ops{}).Compile(); none != nil || err != nil {
		t.Fatal("empty ops compiled to something")
	}
	for _, bad := range []streams.Ops{{Throttle: time.Nanosecond}, {BufferTime: 2 * time.Hour}, {BufferCount: -1}, {BufferCount: streams.MaxBufferCount + 1}} {
		if _, err := bad.Compile(); err == nil {
			t.Errorf("%+v compiled", bad)
		}
	}
}
