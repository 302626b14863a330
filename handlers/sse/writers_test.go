package sse

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/testkit"
)

// A writer's writev that the socket takes only part of hands the rest to
// the blocking flush, and every frame still arrives whole and in order:
// frames far larger than the socket buffers, between small ones, sent
// while the client reads them.
func TestShortWritesArriveWhole(t *testing.T) {
	k := newSink(t, SinkOptions{QueueBytes: 64 << 20})
	p := open(t, k, SlowDisconnect, nil, true)
	if p.recv.w == nil {
		t.Fatal("the client has no writer: the test would not reach the writers' writes")
	}
	var frames []*streams.Frame
	for i := range 40 {
		size := 50
		if i%4 == 1 {
			size = 600<<10 + i // past small socket buffers: the writev is short
		}
		frames = append(frames, sized(t, strconv.Itoa(i), size))
	}
	var want []byte
	for _, f := range frames {
		want = append(want, f.Bytes...)
	}
	got := make(chan []byte, 1)
	go func() { got <- p.read(len(want)) }()
	for _, f := range frames {
		if !p.recv.Send(f) {
			t.Fatalf("frame %s refused", f.ID)
		}
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the stream differs from the frames sent (%d bytes, want %d)", len(b), len(want))
	}
	if k.Clients() != 1 {
		t.Fatal("the client was closed")
	}
}

func TestConsumed(t *testing.T) {
	b := func() net.Buffers { return net.Buffers{[]byte("ab"), []byte("cde"), []byte("f")} }
	for n, want := range []string{"abcdef", "bcdef", "cdef", "def", "ef", "f", ""} {
		var got []byte
		for _, x := range consumed(b(), n) {
			got = append(got, x...)
		}
		if string(got) != want {
			t.Errorf("consumed(%d) = %q, want %q", n, got, want)
		}
	}
}

// quiet makes p's client look as if its last write was window ago.
func quiet(p *peer, window time.Duration) {
	p.recv.lastWrite.Store(nanotime() - int64(window))
}

// With Coalesce, a client that was quiet is written at once, and the
// frames that follow within the window share its next write.
func TestCoalesceSharesAWrite(t *testing.T) {
	k := newSink(t, SinkOptions{Coalesce: time.Second})
	p := open(t, k, SlowDisconnect, nil, false)
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	quiet(p, time.Second)
	writes := func() float64 { return testutil.ToFloat64(k.opts.Metrics.Writes) }
	before := writes()
	first := sized(t, "first", 80)
	if !p.recv.Send(first) {
		t.Fatal("Send refused")
	}
	if got := p.read(len(first.Bytes)); !bytes.Equal(got, first.Bytes) {
		t.Fatalf("got %q", got)
	}
	var want []byte
	for i := range 9 {
		f := sized(t, strconv.Itoa(i), 80)
		if !p.recv.Send(f) {
			t.Fatal("Send refused")
		}
		want = append(want, f.Bytes...)
	}
	if got := p.read(len(want)); !bytes.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	// Counted just after the write: the reader may be first.
	testkit.Eventually(t, "the writes to be counted", func() bool { return writes()-before >= 2 })
	if n := writes() - before; n != 2 {
		t.Fatalf("%v writes, want 2: the first frame, then the nine of the window", n)
	}
}

// A window does not hold a quiet client's frame, nor the sink's Close.
func TestCoalesceHoldsNeitherAQuietFrameNorClose(t *testing.T) {
	k := newSink(t, SinkOptions{Coalesce: time.Hour})
	p := open(t, k, SlowDisconnect, nil, false)
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	quiet(p, time.Hour)
	f := sized(t, "1", 80)
	if !p.recv.Send(f) {
		t.Fatal("Send refused")
	}
	if got := p.read(len(f.Bytes)); !bytes.Equal(got, f.Bytes) {
		t.Fatalf("got %q", got)
	}
	// Within the hour now: held, until Close.
	if !p.recv.Send(sized(t, "2", 80)) {
		t.Fatal("Send refused")
	}
	closed := make(chan struct{})
	go func() { k.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the coalescing window")
	}
}

// A client closed while its writer writes to its socket keeps the socket
// open until that write is done, and the writer then closes it: writers
// write to the descriptor itself, and one closed under a write could be
// reused by a new connection, which would get this client's frames.
func TestCloseDuringAWriteLeavesTheSocketToTheWriter(t *testing.T) {
	k := newSink(t, SinkOptions{})
	p := open(t, k, SlowDisconnect, nil, false)
	if p.recv.w == nil {
		t.Fatal("the client has no writer: the test would not reach the writers' writes")
	}
	writing, resume := make(chan struct{}), make(chan struct{})
	var resumed sync.Once
	testHookWriting = func() {
		writing <- struct{}{}
		<-resume
	}
	defer func() {
		resumed.Do(func() { close(resume) })
		k.Close() // no writer is left to read the hook
		testHookWriting = nil
	}()
	if !p.recv.Send(event(t, "1", "update", "last")) {
		t.Fatal("frame refused")
	}
	<-writing
	p.recv.close("closed by the test")
	if err := p.recv.raw.Control(func(uintptr) {}); err != nil {
		t.Fatalf("the socket was closed under the write: %v", err)
	}
	if k.Clients() != 0 {
		t.Fatal("the client is still counted")
	}
	resumed.Do(func() { close(resume) })
	// The frame, written after the close, and then the end of the stream.
	if got := string(p.rest()); !strings.Contains(got, "id: 1\n") {
		t.Fatalf("after the write: %q", got)
	}
}
