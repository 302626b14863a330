package sse

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/reactivex/rxgo/v2"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// Setup for the sink's tests: a sink with recorded logs and its own
// metrics, a real loopback TCP connection per client (the test holds the
// client end and reads the bytes the sink writes), and a hub with an
// in-process topic for tests about subscriptions.

// testSink is a sink closed when the test ends (at most once: Close is not
// meant to be called twice).
type testSink struct {
	*Sink
	logs *logBuffer
	once sync.Once
}

func (k *testSink) Close() { k.once.Do(k.Sink.Close) }

// newSink returns a sink whose heartbeat is off (an hour) unless opts sets
// one, so that no ping lands among the bytes a test checks.
func newSink(t *testing.T, opts SinkOptions) *testSink {
	t.Helper()
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Hour
	}
	logs := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	k := &testSink{Sink: NewSink(opts), logs: logs}
	t.Cleanup(k.Close)
	return k
}

func (k *testSink) connected() float64 { return testutil.ToFloat64(k.opts.Metrics.Clients) }

func (k *testSink) slow(p Policy) float64 {
	return testutil.ToFloat64(k.opts.Metrics.SlowConsumers.WithLabelValues(string(p)))
}

// closedFor reports whether a stream was logged closed with a reason
// starting with reason.
func (k *testSink) closedFor(reason string) bool {
	for _, line := range strings.Split(k.logs.String(), "\n") {
		if strings.Contains(line, `msg="stream closed"`) && strings.Contains(line, `reason="`+reason) {
			return true
		}
	}
	return false
}

// logBuffer collects the sink's log lines; the sink logs from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// peer is the browser's end of one stream.
type peer struct {
	t     *testing.T
	conn  *net.TCPConn
	head  string         // the response head as sent
	resp  *http.Response // and as an HTTP client reads it
	body  *bufio.Reader  // the stream after the head
	retry string         // its first block
	// recv is the receiver the sink handed to subscribe: the sink's
	// client, which the hub would Send to. nil if subscribe was not called.
	recv *client
	// served is what Serve returned: an error hands the connection back.
	served error
	srv    *net.TCPConn // the server end
}

// loopback is a connected pair of TCP sockets, the client end closed when
// the test ends.
func loopback(t *testing.T) (cli, srv *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// dial connects a client to k over loopback TCP and hands the server end
// to Serve, with subscribe (nil: no subscriptions). small shrinks the
// socket buffers, so that a client that does not read stalls the sink's
// writes after some hundreds of KB instead of some MB. (Not smaller: with
// buffers below loopback's 64 KiB segment size, TCP falls back to window
// probes and a stalled stream resumes only after seconds.)
func dial(t *testing.T, k *testSink, policy Policy, subscribe SubscribeFunc, small bool) *peer {
	t.Helper()
	return dialStream(t, k, Stream{Policy: policy, Subscribe: subscribe}, small)
}

// dialStream is dial with all of a Stream.
func dialStream(t *testing.T, k *testSink, s Stream, small bool) *peer {
	t.Helper()
	cli, srv := loopback(t)
	p := &peer{t: t, conn: cli}
	if small {
		if err := p.conn.SetReadBuffer(64 << 10); err != nil {
			t.Fatal(err)
		}
		if err := srv.SetWriteBuffer(64 << 10); err != nil {
			t.Fatal(err)
		}
	}
	// No read of the test's may hang it: the whole test is well under this.
	if err := p.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	s.Subscribe = p.subscribe(s.Subscribe)
	p.served = k.Serve(srv, s)
	return p
}

// subscribe wraps subscribe (nil: no subscriptions) to record the receiver.
func (p *peer) subscribe(subscribe SubscribeFunc) SubscribeFunc {
	return func(r streams.Receiver) ([]*streams.Subscription, error) {
		p.recv = r.(*client)
		if subscribe == nil {
			return nil, nil
		}
		return subscribe(r)
	}
}

// open is dial, then reading the response head and the retry field.
func open(t *testing.T, k *testSink, policy Policy, subscribe SubscribeFunc, small bool) *peer {
	t.Helper()
	return openStream(t, k, Stream{Policy: policy, Subscribe: subscribe}, small)
}

// openStream is open with all of a Stream.
func openStream(t *testing.T, k *testSink, s Stream, small bool) *peer {
	t.Helper()
	p := dialStream(t, k, s, small)
	p.body = bufio.NewReader(p.conn)
	var head strings.Builder
	for !strings.HasSuffix(head.String(), "\r\n\r\n") {
		line, err := p.body.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			t.Fatalf("reading the response head: %v (have %q)", err, head.String())
		}
	}
	p.head = head.String()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(p.head)), nil)
	if err != nil {
		t.Fatalf("response head %q: %v", p.head, err)
	}
	p.resp = resp
	p.retry = p.block()
	return p
}

// block reads up to and including the next blank line: one SSE frame.
func (p *peer) block() string {
	p.t.Helper()
	var b strings.Builder
	for {
		line, err := p.body.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			p.t.Fatalf("reading stream: %v (have %.200q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
	}
}

// read reads exactly n bytes of the stream.
func (p *peer) read(n int) []byte {
	p.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(p.body, b); err != nil {
		p.t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// rest reads the stream to its end, failing unless the sink closes it.
func (p *peer) rest() []byte {
	p.t.Helper()
	b, err := io.ReadAll(p.body)
	if err != nil {
		p.t.Fatalf("stream did not end: %v (read %d bytes)", err, len(b))
	}
	return b
}

// stall Sends one frame of size bytes (at most QueueBytes) and waits until
// the flush goroutine has taken it from the queue: with small buffers and
// a client that does not read, that write is then in flight and stays so
// until the client reads, so whatever is sent next waits in the queue.
func (p *peer) stall(size int) *streams.Frame {
	p.t.Helper()
	f := sized(p.t, "stall", size)
	if !p.recv.Send(f) {
		p.t.Fatal("the stalling frame was refused")
	}
	testkit.Eventually(p.t, "the flush goroutine to take the stalling frame", func() bool { return queued(p.recv) == 0 })
	return f
}

// queued is how many bytes wait in c's queue (not counting a write in flight).
func queued(c *client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

// sized is an event of exactly size bytes on the wire.
func sized(t *testing.T, id string, size int) *streams.Frame {
	t.Helper()
	empty, err := streams.EncodeFrame(id, "tick", nil, []byte{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := streams.EncodeFrame(id, "tick", nil, bytes.Repeat([]byte("x"), size-len(empty.Bytes)))
	if err != nil || len(f.Bytes) != size {
		t.Fatalf("frame of %d bytes: %v", size, err)
	}
	return f
}

func event(t *testing.T, id, name string, data any) *streams.Frame {
	t.Helper()
	f, err := streams.EncodeFrame(id, name, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// memSpec is an in-process topic: live at once, then whatever the test
// puts on items.
type memSpec struct {
	key   string
	items chan streams.Event
}

func (s *memSpec) Key() string              { return s.key }
func (s *memSpec) Source() string           { return "mem" }
func (s *memSpec) Describe() map[string]any { return map[string]any{"stream": s.key} }

func (s *memSpec) Open(ctx context.Context) rxgo.Observable {
	out := make(chan rxgo.Item)
	go func() {
		defer close(out)
		ev := streams.Event{Kind: streams.Ready}
		for {
			select {
			case out <- rxgo.Of(ev):
			case <-ctx.Done():
				return
			}
			select {
			case ev = <-s.items:
			case <-ctx.Done():
				return
			}
		}
	}()
	return rxgo.FromChannel(out)
}

func (s *memSpec) emit(t *testing.T, ev streams.Event) {
	t.Helper()
	select {
	case s.items <- ev:
	case <-time.After(5 * time.Second):
		t.Fatal("pipeline not draining")
	}
}

// newHub returns a hub with one live topic that a recorder subscribes to,
// so that clients joining it get "connected" at once (inside Serve), and
// Subscribers(spec.key) counts the recorder plus the sink's clients.
// Create it before the sink: cleanups run in reverse, so the sink closes
// its clients (and their subscriptions) before the hub closes.
func newHub(t *testing.T) (*streams.Hub, *memSpec) {
	t.Helper()
	h := streams.NewHub(streams.HubOptions{Linger: time.Hour})
	t.Cleanup(h.Close)
	spec := &memSpec{key: "k", items: make(chan streams.Event)}
	r := testkit.NewRecorder()
	if _, err := h.Subscribe(spec, r, ""); err != nil {
		t.Fatal(err)
	}
	r.Wait(t, 1)
	return h, spec
}

// join subscribes a sink's client to the topic of spec.
func join(h *streams.Hub, spec streams.Spec) SubscribeFunc {
	return func(r streams.Receiver) ([]*streams.Subscription, error) {
		s, err := h.Subscribe(spec, r, "")
		if err != nil {
			return nil, err
		}
		return []*streams.Subscription{s}, nil
	}
}
