package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tmaxmax/go-sse"
)

// stream is one open SSE connection. It is dialled by hand rather than
// through net/http's Transport so that a stream costs this process one
// socket and one goroutine, whatever their number, and so that the request
// is exactly what a browser's EventSource sends.
type stream struct {
	conn    net.Conn
	done    chan struct{} // closed when the reader returns
	closing atomic.Bool   // set when this tool closes it, so the end is no drop
	err     error         // why the reader stopped; read after done
}

// openStream connects, sends the request, checks the response head and
// waits for the stream's first event, which must be "connected": only then
// is the server's Redis subscription live, so nothing sent afterwards is
// missed. Every later event goes to onEvent, on the stream's own goroutine.
func openStream(ctx context.Context, t target, timeout time.Duration, onEvent func(sse.Event)) (*stream, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, body, err := handshake(ctx, t)
	if err != nil {
		return nil, err
	}
	s := &stream{conn: conn, done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.read(body, ready, onEvent)
	select {
	case err = <-ready:
	case <-ctx.Done(): // the read deadline ends the reader too
		err = ctx.Err()
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// handshake dials, sends the request a browser's EventSource sends and
// checks the response head. The connection's deadline is ctx's, so a
// server that never answers cannot hold the caller past it; the caller
// lifts it once the stream is up. body is the event stream that follows.
func handshake(ctx context.Context, t target) (conn net.Conn, body io.Reader, err error) {
	var d net.Dialer
	conn, err = d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	req := "GET " + t.requestURI + " HTTP/1.1\r\n" +
		"Host: " + t.host + "\r\n" +
		"Accept: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"User-Agent: keyflux-sseload\r\n" + t.header + "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("response head: %w", err)
	}
	if err := checkHead(resp); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, resp.Body, nil
}

// statusError is a response head that is not a 200 event stream: a
// refusal (429, 503, ...) or a server that is not Keyflux.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// refusedStatus is the status of a stream the server answered with
// something other than a 200 event stream, or 0 for any other failure.
func refusedStatus(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.code
	}
	return 0
}

// checkHead accepts only a 200 event stream, and says what came instead.
func checkHead(resp *http.Response) error {
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(ct, "text/event-stream") {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &statusError{
		code: resp.StatusCode,
		msg:  fmt.Sprintf("want 200 text/event-stream, got %s %q: %s", resp.Status, ct, strings.TrimSpace(string(body))),
	}
}

// read parses the stream with go-sse's parser until the connection ends.
// The first event answers ready; the deadline that bounded the handshake is
// lifted then, since an idle stream may see nothing but heartbeat comments
// (which the parser skips) for as long as it is held.
func (s *stream) read(body io.Reader, ready chan<- error, onEvent func(sse.Event)) {
	defer close(s.done)
	first := true
	for ev, err := range sse.Read(body, nil) {
		if err != nil {
			s.err = err
			break
		}
		if first {
			first = false
			if ev.Type != "connected" {
				s.err = fmt.Errorf("first event is %q, want \"connected\"", ev.Type)
				ready <- s.err
				return
			}
			_ = s.conn.SetDeadline(time.Time{})
			ready <- nil
			continue
		}
		if onEvent != nil {
			onEvent(ev)
		}
	}
	if s.err == nil {
		s.err = io.EOF // the server closed the stream
	}
	if first {
		ready <- fmt.Errorf("stream ended before its \"connected\" event: %w", s.err)
	}
}

// close ends the stream and waits for its reader.
func (s *stream) close() {
	s.closing.Store(true)
	_ = s.conn.Close()
	<-s.done
}

// dropped reports whether the stream ended without this tool closing it.
func (s *stream) dropped() bool {
	select {
	case <-s.done:
		return !s.closing.Load()
	default:
		return false
	}
}

// closeAll closes every stream; the readers return at once.
func closeAll(all []*stream) {
	for _, s := range all {
		s.closing.Store(true)
		_ = s.conn.Close()
	}
	for _, s := range all {
		<-s.done
	}
}

// errorSummary groups failures by message, so 10,000 identical errors are
// one line.
func errorSummary(errs []error) string {
	count := map[string]int{}
	var order []string
	for _, err := range errs {
		msg := err.Error()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
			msg = "timed out"
		}
		if count[msg] == 0 {
			order = append(order, msg)
		}
		count[msg]++
	}
	var b strings.Builder
	for i, msg := range order {
		if i == 5 {
			fmt.Fprintf(&b, "\n  ... and %d other kinds", len(order)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %dx %s", count[msg], msg)
	}
	return b.String()
}
