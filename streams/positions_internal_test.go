package streams

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A position too long for an id, or an id no position can hold: the frame
// goes without an id, and is counted.
func TestPositionsUnencodableGoIDLess(t *testing.T) {
	m := NewMetrics(nil)
	r := &sliceReceiver{}
	// Nine journals far apart in time with full sequences: over 128 bytes.
	const journals = 9
	joins := make([]Join, journals)
	for i := range joins {
		joins[i] = Join{Spec: durableStub{}}
	}
	receivers, _ := positionReceivers(joins, r, "", m)
	for i, rc := range receivers {
		id := EntryID{MS: 1_000_000_000_000 + uint64(i)*1_000_000_000, Seq: ^uint64(0) - uint64(i)}
		f := mustFrame(id.String(), "entry", map[string]int{"i": i})
		rc.Send(f)
		if !bytes.HasPrefix(f.Bytes, []byte("id: ")) {
			t.Fatal("the original frame lost its id")
		}
	}
	receivers[0].Send(mustFrame("not-an-entry-id", "entry", nil))
	fs := r.frames
	if len(fs) != journals+1 {
		t.Fatalf("%d frames", len(fs))
	}
	for _, f := range fs {
		if f.ID != "" || bytes.HasPrefix(f.Bytes, []byte("id:")) || !bytes.HasPrefix(f.Bytes, []byte("event: entry\n")) {
			t.Fatalf("frame %q (id %q)", f.Bytes, f.ID)
		}
	}
	// The first eight lacked a component; the ninth was too long; the last
	// was no entry id.
	if n := testutil.ToFloat64(m.PositionsUnencodable); n != 2 {
		t.Fatalf("counted %v", n)
	}
}

func TestStripID(t *testing.T) {
	for in, want := range map[string]string{
		"id: 1-0\nevent: x\ndata: {}\n\n": "event: x\ndata: {}\n\n",
		"event: x\ndata: {}\n\n":          "event: x\ndata: {}\n\n",
		": comment\n\n":                   ": comment\n\n",
	} {
		if got := stripID([]byte(in)); string(got) != want || (len(got) < len(in) && cap(got) != len(got)) {
			t.Fatalf("stripID(%q) = %q (cap %d)", in, got, cap(got))
		}
	}
}

type durableStub struct{ Durable }

type sliceReceiver struct{ frames []*Frame }

func (r *sliceReceiver) Send(f *Frame) bool { r.frames = append(r.frames, f); return true }
