package testkit

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tmaxmax/go-sse"
)

// Parse reads the bytes of one SSE frame with go-sse, as a browser would;
// a frame that dispatches no event (a comment, a retry) gives the zero Event.
func Parse(frame []byte) sse.Event {
	for ev, err := range sse.Read(strings.NewReader(string(frame)), nil) {
		if err != nil {
			break
		}
		return ev
	}
	return sse.Event{}
}

// Field is one field of the event a frame holds: "id", "event" or "data".
func Field(frame []byte, name string) string {
	ev := Parse(frame)
	switch name {
	case "id":
		return ev.LastEventID
	case "event":
		return ev.Type
	case "data":
		return ev.Data
	}
	panic("testkit.Field: unknown field " + name)
}

// Data decodes an event's data as a JSON object.
func Data(t testing.TB, ev sse.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		t.Fatalf("event %s data %q: %v", ev.Type, ev.Data, err)
	}
	return m
}

// Stream is one EventSource-like client of a real HTTP stream, reading
// events with go-sse's parser.
type Stream struct {
	t      testing.TB
	resp   *http.Response
	events <-chan sse.Event
	// LastID is the id of the latest event read, as Last-Event-ID.
	LastID string
}

var streamClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Open starts a stream of url (headers as name, value pairs), failing the
// test unless it answers 200; it is closed when the test ends.
func Open(t testing.TB, url string, headers ...string) *Stream {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	s := &Stream{t: t, resp: resp, events: ReadEvents(resp.Body, 4096)}
	t.Cleanup(s.Close)
	return s
}

// ReadEvents parses the SSE events of r, in order, into a channel of size
// buffered events, closed when r ends or fails.
func ReadEvents(r io.Reader, size int) <-chan sse.Event {
	events := make(chan sse.Event, size)
	go func() {
		defer close(events)
		for ev, err := range sse.Read(r, nil) {
			if err != nil {
				return
			}
			events <- ev
		}
	}()
	return events
}

// Close hangs up.
func (s *Stream) Close() { s.resp.Body.Close() }

// Header is a response header.
func (s *Stream) Header(name string) string { return s.resp.Header.Get(name) }

// Next returns the next event, failing the test if none comes within 10 s.
func (s *Stream) Next() sse.Event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream ended")
		}
		s.LastID = ev.LastEventID
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sse.Event{}
}

// Expect returns the next event and checks its name.
func (s *Stream) Expect(name string) sse.Event {
	s.t.Helper()
	ev := s.Next()
	if ev.Type != name {
		s.t.Fatalf("got event %q (%s), want %q", ev.Type, ev.Data, name)
	}
	return ev
}

// Ended waits for the server to end the stream.
func (s *Stream) Ended() {
	s.t.Helper()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			s.t.Fatal("stream still open")
		}
	}
}

// Events is the channel of events read, for tests that select on it.
func (s *Stream) Events() <-chan sse.Event { return s.events }

// RawStream reads a stream's bytes as they are on the wire.
type RawStream struct {
	Resp *http.Response
	r    *bufio.Reader
}

// OpenRaw starts a stream of url without parsing it; it is closed when the
// test ends.
func OpenRaw(t testing.TB, url string) *RawStream {
	t.Helper()
	resp, err := streamClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &RawStream{Resp: resp, r: bufio.NewReader(resp.Body)}
}

// Block reads up to and including the next blank line.
func (r *RawStream) Block(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v (have %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\n" {
			return b.String()
		}
	}
}
