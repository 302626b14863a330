package sse

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// until is a Stream.Until that hands the test the end function and counts
// the calls of stop.
type until struct {
	mu    sync.Mutex
	end   func(last *streams.Frame)
	stops atomic.Int32
	// now, when set, is ended at once, inside Until (an identity that has
	// already expired).
	now *streams.Frame
}

func (u *until) Until(end func(last *streams.Frame)) func() {
	u.mu.Lock()
	u.end = end
	u.mu.Unlock()
	if u.now != nil {
		end(u.now)
	}
	return func() { u.stops.Add(1) }
}

func (u *until) ending(t *testing.T) func(last *streams.Frame) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.end == nil {
		t.Fatal("Until was not called")
	}
	return u.end
}

func expiredFrame(t *testing.T) *streams.Frame {
	return event(t, "", "auth-expired", map[string]string{"reason": "token-expired"})
}

// A stream ended through Until gets everything queued before the end, even
// a queue full to its limit behind a write in flight, then exactly the last
// frame, then EOF; nothing sent after the end is queued, the
// subscriptions are released and stop runs once.
func TestEndWritesTheQueueThenTheLastFrameThenCloses(t *testing.T) {
	const queue = 256 << 10
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{QueueBytes: queue})
	u := &until{}
	p := openStream(t, k, Stream{Subscribe: join(h, spec), Until: u.Until}, true)
	if ev := testkit.Parse([]byte(p.block())); ev.Type != "connected" {
		t.Fatalf("first event %+v, want connected", ev)
	}
	stall := p.stall(queue)
	const size = 32 << 10
	var want []byte
	for i := range queue / size { // exactly full
		f := sized(t, strconv.Itoa(i), size)
		if !p.recv.Send(f) {
			t.Fatalf("Send %d refused", i)
		}
		want = append(want, f.Bytes...)
	}
	last := expiredFrame(t)
	u.ending(t)(last)
	u.ending(t)(event(t, "", "auth-expired", map[string]string{"reason": "second"})) // ignored
	if p.recv.Send(streams.Comment("after the end")) {
		t.Fatal("Send accepted a frame after the end")
	}
	if k.slow(SlowDisconnect) != 0 {
		t.Fatal("the last frame past the queue limit counted as a slow consumer")
	}

	got := p.rest()
	want = append(append(append([]byte{}, stall.Bytes...), want...), last.Bytes...)
	if !bytes.Equal(got, want) {
		t.Fatalf("stream ended with %d bytes, want %d: the queue, then the last frame; tail %.200q",
			len(got), len(want), got[max(0, len(got)-200):])
	}
	testkit.Eventually(t, "the ended client to be removed", func() bool {
		return k.Clients() == 0 && k.connected() == 0 && k.closedFor("ended with a last event")
	})
	if n := h.Subscribers(spec.key); n != 1 {
		t.Fatalf("subscribers %d after the end, want 1 (the recorder)", n)
	}
	if n := u.stops.Load(); n != 1 {
		t.Fatalf("stop ran %d times, want 1", n)
	}
	if q := k.opts.Metrics.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still counted as queued", q)
	}
}

// Until may end the stream before it returns (the identity expired while
// the client joined): the client gets the head, what joining queued, the
// last frame and EOF.
func TestEndInsideUntil(t *testing.T) {
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{})
	last := expiredFrame(t)
	u := &until{now: last}
	p := openStream(t, k, Stream{Subscribe: join(h, spec), Until: u.Until}, false)
	if ev := testkit.Parse([]byte(p.block())); ev.Type != "connected" {
		t.Fatalf("first event %+v, want connected", ev)
	}
	if got := p.rest(); !bytes.Equal(got, last.Bytes) {
		t.Fatalf("after connected: %q, want only %q", got, last.Bytes)
	}
	testkit.Eventually(t, "the client to be removed", func() bool { return k.Clients() == 0 })
	if n := u.stops.Load(); n != 1 || h.Subscribers(spec.key) != 1 {
		t.Fatalf("stop ran %d times, subscribers %d", n, h.Subscribers(spec.key))
	}
}

// A stream that ends first (the client left, a Drop) runs stop once; the
// end called afterwards changes nothing and writes nothing.
func TestEndAfterTheStreamEndedIsHarmless(t *testing.T) {
	k := newSink(t, SinkOptions{})
	u := &until{}
	ended := 0
	p := openStream(t, k, Stream{Until: u.Until}, false)
	end := u.ending(t)
	p.recv.mu.Lock()
	p.recv.ended = append(p.recv.ended, func() { ended++ })
	p.recv.mu.Unlock()
	if n := k.Drop("test drop"); n != 1 {
		t.Fatalf("Drop ended %d streams", n)
	}
	end(expiredFrame(t))
	end(nil)
	if got := p.rest(); len(got) != 0 {
		t.Fatalf("a dropped stream got %q", got)
	}
	if n := u.stops.Load(); n != 1 || ended != 1 || k.Clients() != 0 {
		t.Fatalf("stop ran %d times, ended %d, clients %d", n, ended, k.Clients())
	}
	if q := k.opts.Metrics.queued.Load(); q != 0 {
		t.Fatalf("%d bytes counted as queued after a late end", q)
	}
}

// end(nil) closes once what is queued is written, with no frame of its own.
func TestEndWithoutALastFrame(t *testing.T) {
	k := newSink(t, SinkOptions{})
	u := &until{}
	p := openStream(t, k, Stream{Until: u.Until}, false)
	f := event(t, "1", "set", 1)
	if !p.recv.Send(f) {
		t.Fatal("Send refused")
	}
	u.ending(t)(nil)
	if got := p.rest(); !bytes.Equal(got, f.Bytes) {
		t.Fatalf("stream ended with %q, want %q", got, f.Bytes)
	}
}

// Until is not called for a stream whose subscribe failed: it never went live.
func TestUntilNotCalledWhenSubscribeFails(t *testing.T) {
	k := newSink(t, SinkOptions{})
	u := &until{}
	_, srv := loopback(t)
	defer srv.Close()
	err := k.Serve(srv, Stream{Until: u.Until, Subscribe: func(streams.Receiver) ([]*streams.Subscription, error) {
		return nil, io.ErrUnexpectedEOF
	}})
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("Serve returned %v", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.end != nil {
		t.Fatal("Until called for a stream that never went live")
	}
}

// A client that reads nothing is closed within WriteTimeout of each write
// once it has the end queued: the last frame cannot hold a connection open.
func TestEndOfAStalledClientClosesInBoundedTime(t *testing.T) {
	const queue = 1 << 20
	const timeout = 300 * time.Millisecond
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{QueueBytes: queue, WriteTimeout: timeout})
	u := &until{}
	p := openStream(t, k, Stream{Subscribe: join(h, spec), Until: u.Until}, true)
	p.block() // connected
	p.stall(queue)
	if !p.recv.Send(sized(t, "queued", 64<<10)) {
		t.Fatal("Send refused")
	}
	start := time.Now()
	u.ending(t)(expiredFrame(t))
	testkit.Eventually(t, "the stalled, ending client to be closed", func() bool { return k.Clients() == 0 })
	// The stall began before start: its deadline passes within timeout, and
	// the queue behind it gets no second one.
	if took := time.Since(start); took > 3*timeout {
		t.Fatalf("closed %v after the end, want within about %v", took, timeout)
	}
	if !k.closedFor("write failed") || h.Subscribers(spec.key) != 1 || u.stops.Load() != 1 {
		t.Fatalf("subscribers %d stops %d log %s", h.Subscribers(spec.key), u.stops.Load(), k.logs.String())
	}
	if q := k.opts.Metrics.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still counted as queued", q)
	}
}

// Extra header lines reach the head as given; malformed ones are refused
// before anything is written, the connection handed back.
func TestStreamHeader(t *testing.T) {
	k := newSink(t, SinkOptions{})
	good := "Access-Control-Allow-Origin: https://a.example\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
	p := openStream(t, k, Stream{Header: good}, false)
	if !strings.HasSuffix(p.head, "\r\n"+good+"\r\n") {
		t.Fatalf("head %q does not end with the extra lines", p.head)
	}
	if p.resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("head %q", p.head)
	}
	for _, bad := range []string{
		"X-A: 1",                            // no line end
		"X-A: 1\n",                          // bare LF
		"X-A: 1\r\nX-B: 2\nX-C: 3\r\n",      // bare LF inside
		"X-A: 1\rX-B: 2\r\n",                // bare CR
		"X-A: 1\r\n\r\nHTTP/1.1 200 OK\r\n", // an empty line: a second response
		"X A: 1\r\n",                        // space in the name
		": 1\r\n",                           // no name
		"X-A 1\r\n",                         // no colon
		"X-A: \x00\r\n",                     // control byte
		"X-A: " + strings.Repeat("a", maxHeader) + "\r\n",
	} {
		cli, srv := loopback(t)
		ended := 0
		subscribed := false
		err := k.Serve(srv, Stream{Header: bad, Subscribe: func(streams.Receiver) ([]*streams.Subscription, error) {
			subscribed = true
			return nil, nil
		}}, func() { ended++ })
		if err != ErrBadHeader || subscribed || ended != 1 {
			t.Errorf("header %q: Serve returned %v, subscribed %v, ended %d", bad, err, subscribed, ended)
		}
		srv.Close()
		if got, _ := io.ReadAll(cli); len(got) != 0 {
			t.Errorf("header %q: %q written", bad, got)
		}
	}
	if k.Clients() != 1 {
		t.Fatalf("clients %d, want 1 (the good one)", k.Clients())
	}
}

// An ending client furthest behind when all clients together pass the
// budget is cut off like a slow one, even under SlowReset (a reset would
// drop its last frame anyway): memory first; its reconnect tells it the rest.
func TestEndingClientShedUnderTheBudget(t *testing.T) {
	const budget = 1 << 20
	k := newSink(t, SinkOptions{QueueBytes: budget, MaxQueuedBytes: budget})
	u := &until{}
	far := openStream(t, k, Stream{Policy: SlowReset, Until: u.Until}, true)
	far.stall(300 << 10)
	if !far.recv.Send(sized(t, "queued", 400<<10)) {
		t.Fatal("far: refused under the budget")
	}
	last := expiredFrame(t)
	u.ending(t)(last)
	reader := open(t, k, SlowDisconnect, nil, false)
	f := sized(t, "reader", 400<<10)
	if !reader.recv.Send(f) {
		t.Fatal("reader: its frame was refused instead of the ending client's queue")
	}
	if got := reader.read(len(f.Bytes)); !bytes.Equal(got, f.Bytes) {
		t.Fatal("reader: frame mangled")
	}
	far.body.Reset(far.conn)
	if got := far.rest(); bytes.Contains(got, last.Bytes) {
		t.Fatal("far got its last frame after being shed")
	}
	testkit.Eventually(t, "far to be removed", func() bool { return k.Clients() == 1 })
	if k.slow(SlowDisconnect) != 1 || k.slow(SlowReset) != 0 || u.stops.Load() != 1 {
		t.Fatalf("slow consumers: disconnect %v reset %v; stops %d", k.slow(SlowDisconnect), k.slow(SlowReset), u.stops.Load())
	}
}
