package streams

import (
	"strings"
	"testing"

	"github.com/tmaxmax/go-sse"
)

// FuzzEncodeFrame checks that whatever Redis hands us, one frame is exactly
// one event to a real SSE parser, with its name, id and data intact.
func FuzzEncodeFrame(f *testing.F) {
	f.Add("e-1", "set", []byte("plain"), false)
	f.Add("", "message", []byte("a\r\nb\rc\n\ndata: d\nevent: x\n\n"), false)
	f.Add("a\nid: b", "x\r\nevent: y", []byte(`{"key":"user:1"}`), true)
	f.Add("", "", []byte(""), false)
	f.Add("\x00", ":comment", []byte("\xff\xfe"), true)
	f.Fuzz(func(t *testing.T, id, name string, payload []byte, asJSON bool) {
		var f *Frame
		var err error
		if asJSON {
			f, err = EncodeFrame(id, name, KeyspaceEvent{Key: string(payload)}, nil)
		} else {
			f, err = EncodeFrame(id, name, nil, payload)
		}
		if err != nil {
			t.Fatal(err)
		}
		var events []sse.Event
		for ev, err := range sse.Read(strings.NewReader(string(f.Bytes)), nil) {
			if err != nil {
				t.Fatalf("parser error %v on %q", err, f.Bytes)
			}
			events = append(events, ev)
		}
		if len(events) != 1 {
			t.Fatalf("%q parsed as %d events", f.Bytes, len(events))
		}
		ev := events[0]
		if want := strings.TrimSpace(oneLine(name)); strings.TrimSpace(ev.Type) != want && !(want == "" && ev.Type == "message") {
			t.Fatalf("event name %q, want %q", ev.Type, want)
		}
		if !asJSON {
			want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(payload))
			if ev.Data != want {
				t.Fatalf("data %q, want %q", ev.Data, want)
			}
		} else if strings.ContainsAny(ev.Data, "\r\n") {
			t.Fatalf("JSON data spans lines: %q", ev.Data)
		}
	})
}
