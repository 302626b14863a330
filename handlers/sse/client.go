package sse

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// batches recycles the slices a queue is gathered in: with tens of
// thousands of clients each event would otherwise allocate one per client.
var batches = sync.Pool{New: func() any { b := make(net.Buffers, 0, 8); return &b }}

// maxPooled is the largest batch kept for reuse: the long queues of slow
// clients would otherwise stay in the pool, tens of MB of them, after the
// clients are gone.
const maxPooled = 256

func recycle(b *net.Buffers) {
	if b != nil && cap(*b) <= maxPooled {
		clear(*b) // drop references to frames
		*b = (*b)[:0]
		batches.Put(b)
	}
}

// client is one SSE connection: a bounded queue of shared frames.
type client struct {
	sink *Sink
	conn net.Conn
	raw  syscall.RawConn // for noticing a closed peer; nil if unavailable
	w    *writer         // nil: every write is the blocking flush's
	fd   int             // conn's socket, for w's writes (see writing)
	// lastWrite is when bytes last went (nanotime): writes only store it,
	// and the heartbeats' wheel reads it as it comes round.
	lastWrite atomic.Int64
	// The client's place on the heartbeats' wheel (heartbeats.go, under
	// its mu); hbSlot -1: not on it.
	hbPrev, hbNext *client
	hbSlot         int32
	hangup         uint32   // registration with the sink's hangups watcher
	ended          []func() // run once the stream has ended
	// resetWhenSlow drops what a slow client has not read and sends it
	// "reset", instead of cutting it off.
	resetWhenSlow bool

	mu       sync.Mutex
	queue    *net.Buffers // shared frames' bytes, from batches; nil while idle
	queued   int
	inflight int  // bytes of the batch being written, still held
	aborted  bool // a shed cut the write in flight short
	flushing bool
	overflow bool
	closed   bool
	// writing: w is writing to fd, past Go's own guard against closing a
	// socket in use (which costs more than the rest of the delivery). A
	// release meanwhile leaves conn for w to close (closeLater), so fd
	// cannot be reused by another connection under the write.
	writing    bool
	closeLater bool
	// ending: Stream.Until's end has queued the last frame; nothing more
	// is queued, and the flush closes the client once the queue is written.
	ending  bool
	stopEnd func() // what Stream.Until returned; run on release
	subs    []*streams.Subscription
	room    chan struct{} // closed when the queue is taken for writing or the client closes
}

// Send implements streams.Receiver. It runs under the hub's topic lock, so
// it only queues; writing happens on the client's own flush goroutine.
func (c *client) Send(f *streams.Frame) bool {
	k := c.sink
	n := len(f.Bytes)
	fits := k.budget.take(n)
	if !fits { // all clients together are at the budget: the furthest behind go first
		k.shed(n)
		fits = k.budget.take(n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := fits && !c.closed && !c.overflow && !c.ending && c.queued+n <= k.opts.QueueBytes
	if !ok && fits {
		k.budget.give(n)
	}
	switch {
	case c.closed || c.overflow || c.ending:
		return false
	case ok:
		if c.queue == nil {
			c.queue = batches.Get().(*net.Buffers)
		}
		*c.queue = append(*c.queue, f.Bytes)
		c.queued += n
	case c.resetWhenSlow:
		c.reset()
		ok = true
	default:
		c.cutOff(false)
	}
	c.startFlush()
	return ok
}

// reset drops what the client has not read and queues "reset" instead.
// Called with c.mu held.
func (c *client) reset() {
	c.sink.opts.Metrics.SlowConsumers.WithLabelValues(string(SlowReset)).Inc()
	c.dropQueue()
	c.queue = batches.Get().(*net.Buffers)
	*c.queue = append(*c.queue, c.sink.slowReset.Bytes)
	c.queued = len(c.sink.slowReset.Bytes)
	c.sink.budget.force(c.queued)
}

// cutOff marks the client for disconnection: the flush goroutine closes it.
// Its queue is dropped; abort also cuts a write in flight short, so that
// its bytes are free now, not after WriteTimeout. Called with c.mu held.
func (c *client) cutOff(abort bool) {
	c.sink.opts.Metrics.SlowConsumers.WithLabelValues(string(SlowDisconnect)).Inc()
	c.overflow = true
	c.dropQueue()
	if abort {
		c.abortWrite()
	}
}

// abortWrite writes off the bytes of a write in flight and cuts it short.
// Called with c.mu held.
func (c *client) abortWrite() {
	if c.inflight > 0 {
		c.sink.budget.give(c.inflight)
		c.inflight = 0
		c.aborted = true
		_ = c.conn.SetWriteDeadline(time.Now())
	}
}

// shed applies the client's slow policy because all clients together are
// at the sink's budget. Like Send, it runs under a topic lock: it only queues.
func (c *client) shed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return
	case c.overflow: // cut off already, its last write still stuck
		c.abortWrite()
		return
	case c.ending: // memory first: its last frame is lost, a reconnect tells the rest
		c.cutOff(true)
	case c.resetWhenSlow:
		c.reset()
	default:
		c.cutOff(true)
	}
	c.startFlush()
}

// behind is how many bytes the client holds: queued and being written.
func (c *client) behind() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued + c.inflight // a closed client holds none
}

// dropQueue releases the queue. Called with c.mu held.
func (c *client) dropQueue() {
	c.sink.budget.give(c.queued)
	recycle(c.queue)
	c.queue, c.queued = nil, 0
}

// startFlush hands the client to its writer, or starts the flush
// goroutine, unless one of them has it. Called with c.mu held.
func (c *client) startFlush() {
	if !c.flushing {
		c.flushing = true
		if c.w != nil {
			c.w.push(c)
		} else {
			c.goFlush(nil, nil)
		}
	}
}

// goFlush starts the blocking flush on a goroutine of its own. The sink's
// flushes count these only: a client on a writer's ready list is the
// writers' to finish (Sink.Close waits for both), and a count shared by
// every delivery would be one more contended cache line per write.
func (c *client) goFlush(q *net.Buffers, rest net.Buffers) {
	c.sink.flushes.Add(1)
	go c.flushRest(q, rest)
}

// writeReady is c's turn on its writer w: one non-blocking writev of its
// queue. Whatever else there is to do (a full socket, the rest of a short
// write, an error, closing) goes to the blocking flush, on a goroutine of
// its own, so that w never waits for one client. It says whether the
// writev carried bytes.
func (c *client) writeReady(w *writer, now int64) (wrote bool) {
	c.mu.Lock()
	q, size := c.queue, c.queued
	if c.closed || c.overflow || c.ending || q == nil {
		c.mu.Unlock()
		c.goFlush(nil, nil)
		return
	}
	c.inflight, c.queue, c.queued = size, nil, 0
	c.writing = true
	c.signalRoom()
	c.mu.Unlock()
	if testHookWriting != nil {
		testHookWriting()
	}
	n, err := w.raw.writev(c.fd, *q)
	wrote = n > 0
	c.mu.Lock()
	c.writing = false
	if c.closeLater {
		defer c.conn.Close() // after c.mu: released meanwhile
	}
	if err != nil || n < size {
		c.mu.Unlock()
		c.goFlush(q, consumed(*q, n))
		return
	}
	recycle(q)
	c.lastWrite.Store(now)
	c.sink.budget.give(c.inflight) // 0 if a shed wrote it off already
	c.inflight = 0
	switch {
	case c.aborted || c.closed || c.overflow || c.ending:
		c.mu.Unlock()
		c.goFlush(nil, nil)
	case c.queue != nil: // queued meanwhile: its next turn
		w.push(c)
		c.mu.Unlock()
	default:
		c.flushing = false
		c.mu.Unlock()
	}
	return wrote
}

// testHookWriting, when set, runs as a writer is about to write.
var testHookWriting func()

// consumed is b without its first n bytes, in b's own array.
func consumed(b net.Buffers, n int) net.Buffers {
	for len(b) > 0 && n >= len(b[0]) {
		n -= len(b[0])
		b = b[1:]
	}
	if len(b) > 0 {
		b[0] = b[0][n:]
	}
	return b
}

// WaitRoom implements streams.Paced: it waits until at most half the queue
// limit is queued, so a history replay advances at the client's pace.
func (c *client) WaitRoom(ctx context.Context) bool {
	for {
		c.mu.Lock()
		if c.closed || c.overflow || c.ending {
			c.mu.Unlock()
			return false
		}
		if c.queued <= c.sink.opts.QueueBytes/2 {
			c.mu.Unlock()
			return true
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}

// signalRoom wakes WaitRoom. Called with c.mu held.
func (c *client) signalRoom() {
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
}

// flush writes queued frames until the queue is empty, with one writev per
// batch of shared frames, each bounded by WriteTimeout.
func (c *client) flush() { c.flushRest(nil, nil) }

// flushRest is flush after a writer's short write: rest, what is left of
// q (its bytes still c.inflight), goes first.
func (c *client) flushRest(q *net.Buffers, rest net.Buffers) {
	defer c.sink.flushes.Done()
	for {
		c.mu.Lock()
		if q != nil {
			_ = c.conn.SetWriteDeadline(time.Now().Add(c.sink.opts.WriteTimeout))
			c.mu.Unlock()
			_, err := rest.WriteTo(c.conn)
			c.sink.opts.Metrics.Writes.Inc()
			recycle(q)
			q = nil
			if !c.written(err) {
				return
			}
			continue
		}
		q, overflow, closed, ending := c.queue, c.overflow, c.closed, c.ending
		c.inflight, c.queue, c.queued = c.queued, nil, 0
		c.signalRoom()
		if closed || overflow || q == nil {
			c.sink.budget.give(c.inflight)
			c.inflight = 0
			recycle(q)
			c.flushing = false
			if !closed && !overflow && !ending && c.w != nil {
				// The writer's writes are refused past a deadline.
				_ = c.conn.SetWriteDeadline(time.Time{})
			}
			c.mu.Unlock()
			switch {
			case closed:
			case overflow:
				c.finish(": slow consumer: more than " + strconv.Itoa(c.sink.opts.QueueBytes) +
					" bytes queued, disconnecting; reconnect resumes with Last-Event-ID\n\n")
			case ending:
				c.close("ended with a last event")
			}
			return
		}
		// Under c.mu, so that a cutOff's deadline comes after this one.
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.sink.opts.WriteTimeout))
		c.mu.Unlock()
		bufs := *q // WriteTo consumes its receiver; q keeps the array for reuse
		_, err := bufs.WriteTo(c.conn)
		c.sink.opts.Metrics.Writes.Inc()
		recycle(q)
		q = nil
		if !c.written(err) {
			return
		}
	}
}

// written settles a blocking write that ended with err: its bytes leave
// the budget, and a failed write closes the client. It says whether to go on.
func (c *client) written(err error) bool {
	c.mu.Lock()
	c.sink.budget.give(c.inflight) // 0 if a shed wrote it off already
	c.inflight = 0
	aborted := c.aborted
	c.mu.Unlock()
	if err != nil && aborted {
		c.close("slow consumer: all clients together are past the queued-bytes budget")
		return false
	}
	if err != nil {
		c.close("write failed: " + err.Error())
		return false
	}
	c.lastWrite.Store(nanotime())
	return true
}

// finish writes a last comment, best effort, and closes.
func (c *client) finish(comment string) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.conn.Write([]byte(comment))
	c.close("slow consumer")
}

// beat runs after Heartbeat of silence (the heartbeats' wheel calls it):
// it notices a peer that has gone (fasthttp gives no signal) or keeps
// proxies and the browser content.
func (c *client) beat() {
	if peerClosed(c.raw) {
		c.close("client went away")
		return
	}
	c.Send(c.sink.ping)
}

// close releases everything the client holds. It is safe to call more than
// once and from any goroutine except under a topic lock.
func (c *client) close(reason string) { c.release(reason, true) }

// release is close; closeConn false leaves the connection open, for Serve
// to hand back when nothing was written on it.
func (c *client) release(reason string, closeConn bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.dropQueue()
	c.signalRoom()
	c.closeLater = closeConn && c.writing
	closeConn = closeConn && !c.closeLater
	subs := c.subs
	c.subs = nil
	hangup := c.hangup
	stopEnd := c.stopEnd
	c.stopEnd = nil
	c.mu.Unlock()

	if stopEnd != nil {
		stopEnd()
	}
	c.sink.heartbeats.remove(c)
	for _, s := range subs {
		s.Close()
	}
	c.sink.hangups.forget(c, hangup)
	if closeConn {
		_ = c.conn.Close()
	}
	// Logged before the client is counted out, so that whoever sees the
	// count drop can already read why.
	c.sink.opts.Logger.Debug("stream closed", "remote", c.conn.RemoteAddr(), "reason", reason)
	c.sink.remove(c)
	runAll(c.ended)
}

// watchEnd hands Stream.Until the client's end and keeps what stops it.
// until may call end before it returns.
func (c *client) watchEnd(until func(end func(last *streams.Frame)) (stop func())) {
	stop := until(c.end)
	if stop == nil {
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.stopEnd = stop
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	stop() // ended meanwhile: release ran without it
}

// end queues last (nil: none) behind everything queued, whatever the
// queue limit, refuses everything after it, and has the flush close the
// client once the queue is written. WriteTimeout bounds how long that takes
// for a client that does not read. Harmless once the client has ended.
func (c *client) end(last *streams.Frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.overflow || c.ending {
		return
	}
	c.ending = true
	if last != nil {
		n := len(last.Bytes)
		c.sink.budget.force(n)
		if c.queue == nil {
			c.queue = batches.Get().(*net.Buffers)
		}
		*c.queue = append(*c.queue, last.Bytes)
		c.queued += n
	}
	c.signalRoom() // a paced replay stops waiting
	c.startFlush()
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}
