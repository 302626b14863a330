package streams_test

import (
	"strings"
	"testing"

	"github.com/keyflux/keyflux/streams"
)

func TestEncodeFrameJSON(t *testing.T) {
	f, err := streams.EncodeFrame("e-1", "set", streams.KeyspaceEvent{Key: "user:\n1\r\nevent: x", Event: "set", DB: 2, TS: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "id: e-1\nevent: set\ndata: {\"key\":\"user:\\n1\\r\\nevent: x\",\"event\":\"set\",\"db\":2,\"ts\":7}\n\n"
	if string(f.Bytes) != want {
		t.Fatalf("got %q\nwant %q", f.Bytes, want)
	}
}

func TestEncodeFrameOneLineFields(t *testing.T) {
	f, err := streams.EncodeFrame("a\nid: b", "x\r\ndata: y", map[string]int{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(f.Bytes), "\n"); got != 4 {
		t.Fatalf("%q has %d line breaks, want 4 (id, event, data, blank)", f.Bytes, got)
	}
}

func TestEncodeFrameRawLines(t *testing.T) {
	f, err := streams.EncodeFrame("", "message", nil, []byte("a\r\nb\rc\n\ndata: d"))
	if err != nil {
		t.Fatal(err)
	}
	want := "event: message\ndata: a\ndata: b\ndata: c\ndata: \ndata: data: d\n\n"
	if string(f.Bytes) != want {
		t.Fatalf("got %q\nwant %q", f.Bytes, want)
	}
}

func TestEncodeFrameUnencodable(t *testing.T) {
	if _, err := streams.EncodeFrame("", "x", func() {}, nil); err == nil {
		t.Fatal("a func encoded without error")
	}
}

func TestCommentAndRetry(t *testing.T) {
	if got := string(streams.Comment("a\nb").Bytes); got != ": a b\n\n" {
		t.Fatalf("comment %q", got)
	}
	if got := string(streams.RetryFrame(1500).Bytes); got != "retry: 1500\n\n" {
		t.Fatalf("retry %q", got)
	}
}
