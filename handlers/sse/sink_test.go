package sse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

func TestServeWritesResponseHead(t *testing.T) {
	for _, c := range []struct {
		name, origin string
		retry        time.Duration
		wantRetry    int // the base: the field is drawn from [base, 2 x base)
	}{
		{name: "defaults", wantRetry: 2000},
		{name: "origin and retry", origin: "https://app.example", retry: 1500 * time.Millisecond, wantRetry: 1500},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newSink(t, SinkOptions{Retry: c.retry})
			var header string
			if c.origin != "" {
				header = "Access-Control-Allow-Origin: " + c.origin + "\r\nVary: Origin\r\n"
			}
			p := openStream(t, k, Stream{Header: header}, false)
			r := p.resp
			if !strings.HasPrefix(p.head, "HTTP/1.1 200 OK\r\n") || r.StatusCode != 200 {
				t.Fatalf("response head %q", p.head)
			}
			// net/http takes Connection: close out of the header into Close.
			if !strings.Contains(p.head, "\r\nConnection: close\r\n") || !r.Close {
				t.Errorf("response head %q lacks Connection: close", p.head)
			}
			for name, want := range map[string]string{
				"Content-Type":      "text/event-stream",
				"Cache-Control":     "no-cache",
				"X-Accel-Buffering": "no",
			} {
				if got := r.Header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			origin := r.Header.Values("Access-Control-Allow-Origin")
			if c.origin == "" && len(origin) != 0 {
				t.Errorf("Access-Control-Allow-Origin %q sent though no header was passed", origin)
			}
			if c.origin != "" && (len(origin) != 1 || origin[0] != c.origin || r.Header.Get("Vary") != "Origin") {
				t.Errorf("Access-Control-Allow-Origin %q, Vary %q, want %q and Origin", origin, r.Header.Values("Vary"), c.origin)
			}
			// The body has no length: it ends when the connection does.
			if r.ContentLength != -1 || len(r.TransferEncoding) != 0 {
				t.Errorf("length %d, encoding %v: the stream must run until the connection closes",
					r.ContentLength, r.TransferEncoding)
			}
			if ms, ok := retryOf(p.retry); !ok || ms < c.wantRetry || ms >= 2*c.wantRetry {
				t.Errorf("first field %q, want retry in [%d, %d)", p.retry, c.wantRetry, 2*c.wantRetry)
			}
			if k.Clients() != 1 || k.connected() != 1 {
				t.Errorf("clients %d, gauge %v, want 1", k.Clients(), k.connected())
			}
		})
	}
}

func TestNewSinkDefaults(t *testing.T) {
	k := NewSink(SinkOptions{})
	defer k.Close()
	o := k.opts
	if o.Heartbeat != 15*time.Second || o.Retry != 2*time.Second || o.WriteTimeout != 10*time.Second ||
		o.QueueBytes != 1<<20 || o.Metrics == nil || o.Logger == nil {
		t.Fatalf("defaults %+v", o)
	}
	if string(k.ping.Bytes) != ": ping\n\n" {
		t.Fatalf("ping frame %q", k.ping.Bytes)
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": SlowDisconnect, "disconnect": SlowDisconnect, "reset": SlowReset} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"drop", "Reset", " reset"} {
		if got, err := ParsePolicy(in); err == nil {
			t.Errorf("ParsePolicy(%q) = %q, want an error", in, got)
		}
	}
}

// Frames reach the client in the order they were sent, byte for byte, and
// a browser's parser reads them back as the events they encode.
func TestFramesArriveInOrderByteExact(t *testing.T) {
	k := newSink(t, SinkOptions{})
	p := open(t, k, SlowDisconnect, nil, false)
	var frames []*streams.Frame
	for i := range 300 {
		id := strconv.Itoa(i + 1)
		switch i % 3 {
		case 0:
			frames = append(frames, event(t, id, "set", map[string]any{"n": i, "s": "é\u2028<\n>"}))
		case 1:
			f, err := streams.EncodeFrame(id, "message", nil, []byte(fmt.Sprintf("line %d\nsecond\r\nthird", i)))
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f)
		default:
			frames = append(frames, streams.Comment("comment "+id))
		}
	}
	var want []byte
	for _, f := range frames {
		if !p.recv.Send(f) {
			t.Fatalf("Send refused frame %q", f.Bytes)
		}
		want = append(want, f.Bytes...)
	}
	got := p.read(len(want))
	if !bytes.Equal(got, want) {
		t.Fatalf("stream differs from the frames sent:\ngot  %.300q\nwant %.300q", got, want)
	}
	// Read as a browser would: every frame is one event (or a comment).
	for i, f := range frames {
		block, rest, _ := bytes.Cut(got, []byte("\n\n"))
		got = rest
		ev, sent := testkit.Parse(append(block, "\n\n"...)), testkit.Parse(f.Bytes)
		if ev != sent || (i%3 != 2 && ev.LastEventID != strconv.Itoa(i+1)) {
			t.Fatalf("frame %d read back as %+v, sent %+v", i, ev, sent)
		}
	}
	if k.Clients() != 1 {
		t.Fatalf("clients %d, want 1", k.Clients())
	}
}

// Frames sent while a write is in flight are gathered into one batch and
// all follow it, in order, once the client reads again.
func TestFramesQueuedDuringAWriteFollowIt(t *testing.T) {
	const queue = 2 << 20
	k := newSink(t, SinkOptions{QueueBytes: queue})
	p := open(t, k, SlowDisconnect, nil, true)
	stall := p.stall(queue)
	var want []byte
	for i := range 100 {
		f := event(t, strconv.Itoa(i), "set", map[string]int{"n": i})
		if !p.recv.Send(f) {
			t.Fatalf("Send %d refused", i)
		}
		want = append(want, f.Bytes...)
	}
	c := p.recv
	c.mu.Lock()
	batch, bytesQueued := len(*c.queue), c.queued
	c.mu.Unlock()
	if batch != 100 || bytesQueued != len(want) {
		t.Fatalf("behind the write in flight: %d frames, %d bytes queued; want 100 frames, %d bytes", batch, bytesQueued, len(want))
	}
	if got := p.read(len(stall.Bytes)); !bytes.Equal(got, stall.Bytes) {
		t.Fatal("the frame in flight arrived altered")
	}
	if got := p.read(len(want)); !bytes.Equal(got, want) {
		t.Fatalf("queued frames arrived as %.300q, want %.300q", got, want)
	}
	testkit.Eventually(t, "the queue to empty", func() bool { return queued(c) == 0 })
	if f := event(t, "after", "set", 1); !c.Send(f) || p.block() != string(f.Bytes) {
		t.Fatal("the stream stopped after the batch")
	}
}

// A client that stops reading while frames keep coming is cut off once
// its queue passes QueueBytes: Send refuses, the write in flight completes,
// then a last comment and the connection closes; what was queued is
// dropped (the client resumes with Last-Event-ID) and the subscriptions
// subscribe returned are closed.
func TestSlowDisconnectCutsOffAClientThatDoesNotRead(t *testing.T) {
	const queue = 2 << 20
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{QueueBytes: queue})
	p := open(t, k, SlowDisconnect, join(h, spec), true)
	if ev := testkit.Parse([]byte(p.block())); ev.Type != "connected" {
		t.Fatalf("first event %+v, want connected", ev)
	}
	if n := h.Subscribers(spec.key); n != 2 {
		t.Fatalf("subscribers %d, want 2 (recorder and client)", n)
	}
	stall := p.stall(queue)

	const size = 64 << 10
	accepted := 0
	for p.recv.Send(sized(t, strconv.Itoa(accepted), size)) {
		if accepted++; accepted > 2*queue/size {
			t.Fatalf("Send still accepts after %d frames of %d bytes past a %d-byte queue", accepted, size, queue)
		}
	}
	if accepted != queue/size { // exactly full, then one more overflows it
		t.Fatalf("queue took %d frames of %d bytes, want %d", accepted, size, queue/size)
	}
	if got := k.slow(SlowDisconnect); got != 1 {
		t.Fatalf("slow consumers (disconnect) %v, want 1", got)
	}
	if got := k.slow(SlowReset); got != 0 {
		t.Fatalf("slow consumers (reset) %v, want 0", got)
	}
	if p.recv.Send(streams.Comment("late")) {
		t.Fatal("Send accepted a frame after the overflow")
	}
	if p.recv.WaitRoom(context.Background()) {
		t.Fatal("WaitRoom promised room to a client being cut off")
	}
	// The write in flight cannot end while the client does not read, so it
	// is still connected and subscribed.
	if k.Clients() != 1 || h.Subscribers(spec.key) != 2 {
		t.Fatalf("cut off before the write in flight ended: clients %d, subscribers %d",
			k.Clients(), h.Subscribers(spec.key))
	}

	got := p.rest()
	if !bytes.HasPrefix(got, stall.Bytes) {
		t.Fatalf("the write in flight did not arrive whole (%d bytes, want %d first)", len(got), len(stall.Bytes))
	}
	last := string(got[len(stall.Bytes):])
	if !strings.HasPrefix(last, ": slow consumer: ") || !strings.HasSuffix(last, "\n\n") ||
		strings.Count(last, "\n") != 2 || !strings.Contains(last, strconv.Itoa(queue)) {
		t.Fatalf("after the write in flight: %.200q, want only the slow consumer comment", last)
	}
	if ev := testkit.Parse([]byte(last)); ev != testkit.Parse(nil) {
		t.Fatalf("the last comment reads as event %+v", ev)
	}
	// The connection closes after the subscriptions are released.
	if n := h.Subscribers(spec.key); n != 1 {
		t.Fatalf("subscribers %d after the cut-off, want 1 (the recorder)", n)
	}
	testkit.Eventually(t, "the client to be removed", func() bool {
		return k.Clients() == 0 && k.connected() == 0 && k.closedFor("slow consumer")
	})
	if got := k.slow(SlowDisconnect); got != 1 {
		t.Fatalf("slow consumers (disconnect) %v, want 1", got)
	}
}

// A frame larger than the whole queue overflows it at once: the client gets
// only the last comment.
func TestSlowDisconnectFrameLargerThanTheQueue(t *testing.T) {
	k := newSink(t, SinkOptions{QueueBytes: 100})
	p := open(t, k, SlowDisconnect, nil, false)
	if p.recv.Send(sized(t, "1", 101)) {
		t.Fatal("Send accepted a frame larger than the queue")
	}
	want := ": slow consumer: more than 100 bytes queued, disconnecting; reconnect resumes with Last-Event-ID\n\n"
	if got := string(p.rest()); got != want {
		t.Fatalf("stream ended with %q, want %q", got, want)
	}
	testkit.Eventually(t, "the client to be removed", func() bool { return k.Clients() == 0 && k.connected() == 0 })
	if k.slow(SlowDisconnect) != 1 || k.slow(SlowReset) != 0 {
		t.Fatalf("slow consumers: disconnect %v reset %v", k.slow(SlowDisconnect), k.slow(SlowReset))
	}
}

// With SlowReset an overflowing queue is replaced by one "reset" event:
// the client stays connected and gets what is sent afterwards.
func TestSlowResetReplacesTheQueueWithReset(t *testing.T) {
	const queue = 2 << 20
	k := newSink(t, SinkOptions{QueueBytes: queue})
	p := open(t, k, SlowReset, nil, true)
	stall := p.stall(queue)

	const size = 64 << 10
	for i := 0; k.slow(SlowReset) == 0; i++ {
		if i > 2*queue/size {
			t.Fatalf("no reset after %d frames of %d bytes past a %d-byte queue", i, size, queue)
		}
		if !p.recv.Send(sized(t, "dropped-"+strconv.Itoa(i), size)) {
			t.Fatalf("Send %d refused: a resetting client is never cut off", i)
		}
	}
	after := event(t, "after", "set", map[string]string{"k": "v"})
	if !p.recv.Send(after) {
		t.Fatal("Send refused after the reset")
	}
	if k.slow(SlowReset) != 1 || k.slow(SlowDisconnect) != 0 {
		t.Fatalf("slow consumers: reset %v disconnect %v, want 1 and 0", k.slow(SlowReset), k.slow(SlowDisconnect))
	}

	if got := p.read(len(stall.Bytes)); !bytes.Equal(got, stall.Bytes) {
		t.Fatal("the write in flight arrived altered")
	}
	ev := testkit.Parse([]byte(p.block()))
	if ev.Type != "reset" || ev.LastEventID != "" {
		t.Fatalf("after the write in flight: %+v, want a reset without id (none of the dropped frames)", ev)
	}
	if d := testkit.Data(t, ev); d["reason"] != "slow-consumer" || d["detail"] == "" {
		t.Fatalf("reset data %v, want reason slow-consumer and a detail", d)
	}
	if got := p.block(); got != string(after.Bytes) {
		t.Fatalf("after the reset: %.200q, want %q", got, after.Bytes)
	}
	later := event(t, "later", "set", 2)
	if !p.recv.Send(later) {
		t.Fatal("Send refused later")
	}
	if got := p.block(); got != string(later.Bytes) {
		t.Fatalf("later frame: %.200q, want %q", got, later.Bytes)
	}
	if k.Clients() != 1 || k.connected() != 1 {
		t.Fatalf("clients %d gauge %v: a reset client must stay connected", k.Clients(), k.connected())
	}
}

// A client whose socket accepts nothing for WriteTimeout is cut off (not
// counted as a slow consumer: its queue never overflowed).
func TestWriteTimeoutCutsOffAStalledClient(t *testing.T) {
	const queue = 2 << 20
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{QueueBytes: queue, WriteTimeout: 100 * time.Millisecond})
	p := open(t, k, SlowDisconnect, join(h, spec), true)
	p.block() // connected
	stall := p.stall(queue)
	testkit.Eventually(t, "the stalled client to be cut off", func() bool {
		return k.Clients() == 0 && k.closedFor("write failed")
	})
	if n := h.Subscribers(spec.key); n != 1 {
		t.Fatalf("subscribers %d, want 1 (the recorder)", n)
	}
	if p.recv.Send(streams.Comment("late")) {
		t.Fatal("Send accepted a frame after the cut-off")
	}
	if k.slow(SlowDisconnect) != 0 || k.slow(SlowReset) != 0 || k.connected() != 0 {
		t.Fatalf("slow consumers %v/%v, gauge %v", k.slow(SlowDisconnect), k.slow(SlowReset), k.connected())
	}
	if got := p.rest(); len(got) >= len(stall.Bytes) || !bytes.HasPrefix(stall.Bytes, got) {
		t.Fatalf("read %d bytes, want a part of the %d-byte frame that timed out", len(got), len(stall.Bytes))
	}
}

func TestHeartbeatPingsAnIdleClient(t *testing.T) {
	k := newSink(t, SinkOptions{Heartbeat: 20 * time.Millisecond})
	p := open(t, k, SlowDisconnect, nil, false)
	f := event(t, "1", "set", 1)
	if !p.recv.Send(f) {
		t.Fatal("Send refused")
	}
	for got := p.block(); got != string(f.Bytes); got = p.block() {
		if got != ": ping\n\n" { // a slow test may see a ping first
			t.Fatalf("got %q, want the frame sent", got)
		}
	}
	// After the frame, the stream is idle: nothing but pings.
	for range 3 {
		b := p.block()
		if b != ": ping\n\n" {
			t.Fatalf("idle stream got %q, want a ping", b)
		}
		if ev := testkit.Parse([]byte(b)); ev != testkit.Parse(nil) {
			t.Fatalf("the ping reads as event %+v", ev)
		}
	}
	if k.Clients() != 1 {
		t.Fatalf("clients %d, want 1", k.Clients())
	}
}

// The heartbeat's peek discards what a client sends after its request and
// keeps it; the hang-up watcher ignores it too.
func TestHeartbeatKeepsAClientThatSendsBytes(t *testing.T) {
	k := newSink(t, SinkOptions{Heartbeat: 20 * time.Millisecond})
	p := open(t, k, SlowDisconnect, nil, false)
	if _, err := p.conn.Write([]byte("stray bytes\r\n")); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if b := p.block(); b != ": ping\n\n" {
			t.Fatalf("got %q, want a ping", b)
		}
	}
	if k.Clients() != 1 || strings.Contains(k.logs.String(), "stream closed") {
		t.Fatalf("a client that sent bytes was dropped: clients %d, log %s", k.Clients(), k.logs.String())
	}
}

// Without the hang-up watcher (as off Linux), the heartbeat finds a client
// that has gone and releases its subscriptions.
func TestHeartbeatFindsAVanishedClient(t *testing.T) {
	for _, c := range []struct {
		name   string
		hangUp func(*peer) error
	}{
		// The client's socket stays readable, so no write of the sink's
		// can fail: only the heartbeat's peek can find it gone.
		{"half-closed", func(p *peer) error { return p.conn.CloseWrite() }},
		{"closed", func(p *peer) error { return p.conn.Close() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, spec := newHub(t)
			k := newSink(t, SinkOptions{Heartbeat: 20 * time.Millisecond})
			k.hangups.close()
			k.hangups = nil
			p := open(t, k, SlowDisconnect, join(h, spec), false)
			p.block() // connected
			if err := c.hangUp(p); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, "the vanished client to be removed", func() bool {
				return k.Clients() == 0 && h.Subscribers(spec.key) == 1 && k.connected() == 0
			})
			if c.name == "half-closed" {
				testkit.Eventually(t, "the close to be logged", func() bool { return k.closedFor("client went away") })
				p.rest() // the sink closed its end too
			}
		})
	}
}

// On Linux the hang-up watcher notices a client that closes at once,
// however long the heartbeat: its subscriptions are released and it no
// longer counts. Elsewhere the heartbeat does it.
func TestHangUpReleasesTheClient(t *testing.T) {
	heartbeat := time.Hour
	if runtime.GOOS != "linux" {
		heartbeat = 20 * time.Millisecond
	}
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{Heartbeat: heartbeat})
	p := open(t, k, SlowDisconnect, join(h, spec), false)
	ev := testkit.Parse([]byte(p.block()))
	if d := testkit.Data(t, ev); ev.Type != "connected" || d["stream"] != spec.key {
		t.Fatalf("first event %+v, want connected to %s", ev, spec.key)
	}
	// A live event of the topic reaches the client through the hub.
	spec.emit(t, streams.Event{Name: "set", Data: map[string]string{"key": "a"}})
	if ev := testkit.Parse([]byte(p.block())); ev.Type != "set" || ev.Data != `{"key":"a"}` || ev.LastEventID == "" {
		t.Fatalf("live event %+v", ev)
	}
	if n := h.Subscribers(spec.key); n != 2 || k.Clients() != 1 || k.connected() != 1 {
		t.Fatalf("subscribers %d clients %d gauge %v", n, k.Clients(), k.connected())
	}
	p.conn.Close()
	testkit.Eventually(t, "the client to be released", func() bool {
		return k.Clients() == 0 && k.connected() == 0 && h.Subscribers(spec.key) == 1 && k.closedFor("client went away")
	})
	if p.recv.Send(streams.Comment("late")) {
		t.Fatal("Send accepted a frame for a client that hung up")
	}
}

// Drop ends every stream, releasing their subscriptions, and the sink
// goes on serving new ones.
func TestDropEndsStreamsButKeepsServing(t *testing.T) {
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{})
	a := open(t, k, SlowDisconnect, join(h, spec), false)
	b := open(t, k, SlowReset, join(h, spec), false)
	a.block()
	b.block()
	if n := h.Subscribers(spec.key); n != 3 || k.Clients() != 2 {
		t.Fatalf("subscribers %d clients %d", n, k.Clients())
	}
	if n := k.Drop("test drop"); n != 2 {
		t.Fatalf("Drop ended %d streams, want 2", n)
	}
	for _, p := range []*peer{a, b} {
		if got := p.rest(); len(got) != 0 {
			t.Fatalf("dropped stream then got %q", got)
		}
	}
	if n := h.Subscribers(spec.key); n != 1 || k.Clients() != 0 || k.connected() != 0 {
		t.Fatalf("after Drop: subscribers %d clients %d gauge %v", n, k.Clients(), k.connected())
	}
	if !k.closedFor("test drop") {
		t.Fatalf("log %s", k.logs.String())
	}
	if n := k.Drop("again"); n != 0 {
		t.Fatalf("second Drop ended %d streams", n)
	}

	c := open(t, k, SlowDisconnect, join(h, spec), false)
	if ev := testkit.Parse([]byte(c.block())); ev.Type != "connected" {
		t.Fatalf("new stream after Drop: %+v", ev)
	}
	spec.emit(t, streams.Event{Name: "set", Data: 1})
	if ev := testkit.Parse([]byte(c.block())); ev.Type != "set" {
		t.Fatalf("new stream after Drop: %+v", ev)
	}
	if k.Clients() != 1 || k.connected() != 1 || h.Subscribers(spec.key) != 2 {
		t.Fatalf("clients %d gauge %v subscribers %d", k.Clients(), k.connected(), h.Subscribers(spec.key))
	}
}

// Close ends every stream, even one with a write in flight, and a
// connection handed over afterwards is closed at once, never subscribed.
func TestCloseEndsStreamsAndRefusesNewOnes(t *testing.T) {
	const queue = 2 << 20
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{QueueBytes: queue})
	idle := open(t, k, SlowDisconnect, join(h, spec), false)
	idle.block() // connected
	busy := open(t, k, SlowDisconnect, nil, true)
	stall := busy.stall(queue)

	k.Close() // cuts off the write in flight too, and waits for it
	if k.Clients() != 0 || k.connected() != 0 || h.Subscribers(spec.key) != 1 {
		t.Fatalf("after Close: clients %d gauge %v subscribers %d", k.Clients(), k.connected(), h.Subscribers(spec.key))
	}
	if got := idle.rest(); len(got) != 0 {
		t.Fatalf("closed stream then got %q", got)
	}
	if got := busy.rest(); len(got) >= len(stall.Bytes) || !bytes.HasPrefix(stall.Bytes, got) {
		t.Fatalf("busy stream read %d bytes, want a part of the %d-byte frame cut off", len(got), len(stall.Bytes))
	}
	if busy.recv.Send(streams.Comment("late")) || busy.recv.WaitRoom(context.Background()) {
		t.Fatal("a closed client still takes frames")
	}

	late := dial(t, k, SlowDisconnect, join(h, spec), false)
	got, err := io.ReadAll(late.conn)
	if err != nil {
		t.Fatalf("a connection handed over after Close is still open: %v", err)
	}
	if late.recv != nil {
		t.Fatal("a connection handed over after Close was subscribed")
	}
	if bytes.Contains(got, []byte("\nevent:")) || bytes.Contains(got, []byte("\ndata:")) {
		t.Fatalf("a connection handed over after Close got events: %q", got)
	}
	if k.Clients() != 0 || k.connected() != 0 || h.Subscribers(spec.key) != 1 {
		t.Fatalf("after a late Serve: clients %d gauge %v subscribers %d", k.Clients(), k.connected(), h.Subscribers(spec.key))
	}
}

// What subscribe returned along with an error is released, and the stream
// ends.
// A failed subscribe hands the connection back untouched, so the caller
// can answer with a real error response instead of a 200 and a close.
func TestSubscribeErrorHandsTheConnectionBack(t *testing.T) {
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{})
	ended := 0
	cli, srv := loopback(t)
	err := k.Serve(srv, Stream{Subscribe: func(streams.Receiver) ([]*streams.Subscription, error) {
		s, err := h.Subscribe(spec, testkit.NewRecorder(), "")
		if err != nil {
			t.Fatal(err)
		}
		return []*streams.Subscription{s}, errors.New("no such stream")
	}}, func() { ended++ })
	if err == nil || err.Error() != "no such stream" {
		t.Fatalf("Serve returned %v", err)
	}
	// The connection is still open and nothing was written on it.
	if _, err := srv.Write([]byte("answer")); err != nil {
		t.Fatalf("connection not handed back: %v", err)
	}
	srv.Close()
	if got, _ := io.ReadAll(cli); string(got) != "answer" {
		t.Fatalf("client got %q, want only the caller's answer", got)
	}
	if n := h.Subscribers(spec.key); n != 1 || k.Clients() != 0 || k.connected() != 0 || ended != 1 {
		t.Fatalf("subscribers %d clients %d gauge %v ended %d", n, k.Clients(), k.connected(), ended)
	}
	if !k.closedFor("subscribe failed: no such stream") {
		t.Fatalf("log %s", k.logs.String())
	}
}

// A client dropped while subscribe runs has its subscriptions released
// when subscribe returns them; the hub itself would not notice before its
// next frame. Nothing was written: the head waits for the subscription.
func TestDropWhileSubscribingReleasesTheSubscriptions(t *testing.T) {
	h, spec := newHub(t)
	k := newSink(t, SinkOptions{})
	p := dial(t, k, SlowDisconnect, func(r streams.Receiver) ([]*streams.Subscription, error) {
		subs, err := join(h, spec)(r)
		if n := k.Drop("dropped while joining"); n != 1 {
			t.Errorf("Drop ended %d streams, want 1", n)
		}
		return subs, err
	}, false)
	if n := h.Subscribers(spec.key); n != 1 || k.Clients() != 0 || k.connected() != 0 || p.served != nil {
		t.Fatalf("subscribers %d clients %d gauge %v served %v", n, k.Clients(), k.connected(), p.served)
	}
	p.body = bufio.NewReader(p.conn)
	if got := p.rest(); len(got) != 0 {
		t.Fatalf("dropped stream got %q", got)
	}
}

// Frames queued while the client joins (its "connected" among them) come
// after the response head, never before it.
func TestFramesQueuedWhileJoiningFollowTheHead(t *testing.T) {
	k := newSink(t, SinkOptions{})
	p := open(t, k, SlowDisconnect, func(r streams.Receiver) ([]*streams.Subscription, error) {
		for i := range 3 {
			if !r.Send(event(t, strconv.Itoa(i), "tick", nil)) {
				t.Fatal("refused while joining")
			}
		}
		return nil, nil
	}, false)
	for i := range 3 {
		if got := testkit.Field([]byte(p.block()), "id"); got != strconv.Itoa(i) {
			t.Fatalf("frame %d has id %q", i, got)
		}
	}
}

// Each connection draws its retry from [base, 2 x base), so that clients
// cut off together do not all come back at the same moment.
func TestRetryIsSpreadPerConnection(t *testing.T) {
	const base = 1000
	k := newSink(t, SinkOptions{Retry: base * time.Millisecond})
	seen := map[int]bool{}
	for range 40 {
		p := open(t, k, SlowDisconnect, nil, false)
		ms, ok := retryOf(p.retry)
		if !ok || ms < base || ms >= 2*base {
			t.Fatalf("retry field %q, want a value in [%d, %d)", p.retry, base, 2*base)
		}
		seen[ms] = true
	}
	// 40 draws from 1,000 values: fewer than 30 distinct ones is a
	// one-in-a-trillion chance, or no jitter at all.
	if len(seen) < 30 {
		t.Fatalf("%d distinct retry values in 40 connections: %v", len(seen), seen)
	}
}

// retryOf reads the milliseconds of a "retry: N" block.
func retryOf(block string) (int, bool) {
	v, ok := strings.CutPrefix(block, "retry: ")
	if !ok || !strings.HasSuffix(v, "\n\n") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v, "\n\n"))
	return n, err == nil
}

// WaitRoom paces a replay: it returns at once while at most half the queue
// is used, waits while more is, until the flush goroutine takes the queue,
// and gives up when ctx ends or the client goes.
func TestWaitRoom(t *testing.T) {
	const queue = 2 << 20
	k := newSink(t, SinkOptions{QueueBytes: queue})
	p := open(t, k, SlowDisconnect, nil, true)
	c := p.recv
	ctx := context.Background()
	if !c.WaitRoom(ctx) {
		t.Fatal("WaitRoom on an empty queue returned false")
	}
	stall := p.stall(queue)

	const size = 64 << 10
	send := func(i int) {
		t.Helper()
		if !c.Send(sized(t, strconv.Itoa(i), size)) {
			t.Fatalf("Send %d refused", i)
		}
	}
	fill := func() { // just past half
		t.Helper()
		for i := 0; queued(c) <= queue/2; i++ {
			send(i)
		}
	}
	for i := 0; i < queue/2/size; i++ { // up to exactly half: still room
		send(i)
	}
	if queued(c) != queue/2 || !c.WaitRoom(ctx) {
		t.Fatalf("WaitRoom with %d of %d bytes queued returned false", queued(c), queue)
	}
	fill()

	waited := make(chan bool, 1)
	go func() { waited <- c.WaitRoom(ctx) }()
	testkit.Eventually(t, "WaitRoom to wait", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.room != nil
	})
	select {
	case ok := <-waited:
		t.Fatalf("WaitRoom returned %v with %d of %d bytes queued", ok, queued(c), queue)
	default:
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if c.WaitRoom(cancelled) {
		t.Fatal("WaitRoom returned true over half with ctx cancelled")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if c.WaitRoom(short) || short.Err() == nil {
		t.Fatalf("WaitRoom returned before its ctx ended (%v)", short.Err())
	}

	// Reading the write in flight lets the flush goroutine take the queue.
	if got := p.read(len(stall.Bytes)); !bytes.Equal(got, stall.Bytes) {
		t.Fatal("the write in flight arrived altered")
	}
	select {
	case ok := <-waited:
		if !ok {
			t.Fatal("WaitRoom returned false once the queue drained")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitRoom still waiting after the queue drained")
	}

	// The queue taken is now the write in flight; fill up again and hang up.
	testkit.Eventually(t, "the flush goroutine to take the queue", func() bool { return queued(c) == 0 })
	fill()
	go func() { waited <- c.WaitRoom(ctx) }()
	testkit.Eventually(t, "WaitRoom to wait", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.room != nil
	})
	p.conn.Close()
	select {
	case ok := <-waited:
		if ok {
			t.Fatal("WaitRoom returned true for a client that hung up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitRoom still waiting after the client hung up")
	}
	testkit.Eventually(t, "the client to be removed", func() bool { return k.Clients() == 0 })
	if c.WaitRoom(ctx) {
		t.Fatal("WaitRoom returned true for a closed client")
	}
}
