package sse

import (
	"context"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// batches recycles the slices a queue is gathered in: with tens of
// thousands of clients each event would otherwise allocate one per client.
var batches = sync.Pool{New: func() any { b := make(net.Buffers, 0, 8); return &b }}

func recycle(b *net.Buffers) {
	if b != nil {
		clear(*b) // drop references to frames
		*b = (*b)[:0]
		batches.Put(b)
	}
}

// client is one SSE connection: a bounded queue of shared frames.
type client struct {
	sink   *Sink
	conn   net.Conn
	raw    syscall.RawConn // for noticing a closed peer; nil if unavailable
	timer  *time.Timer
	hangup uint32 // registration with the sink's hangups watcher
	// resetWhenSlow drops what a slow client has not read and sends it
	// "reset", instead of cutting it off.
	resetWhenSlow bool

	mu       sync.Mutex
	queue    *net.Buffers // shared frames' bytes, from batches; nil while idle
	queued   int
	flushing bool
	overflow bool
	closed   bool
	subs     []*streams.Subscription
	room     chan struct{} // closed when the queue is taken for writing or the client closes
}

// Send implements streams.Receiver. It runs under the hub's topic lock, so
// it only queues; writing happens on the client's own flush goroutine.
func (c *client) Send(f *streams.Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.overflow {
		return false
	}
	ok := c.queued+len(f.Bytes) <= c.sink.opts.QueueBytes
	switch {
	case ok:
		if c.queue == nil {
			c.queue = batches.Get().(*net.Buffers)
		}
		*c.queue = append(*c.queue, f.Bytes)
		c.queued += len(f.Bytes)
	case c.resetWhenSlow:
		c.sink.opts.Metrics.SlowConsumers.WithLabelValues(string(SlowReset)).Inc()
		if c.queue == nil {
			c.queue = batches.Get().(*net.Buffers)
		}
		clear(*c.queue)
		*c.queue = append((*c.queue)[:0], c.sink.slowReset.Bytes)
		c.queued = len(c.sink.slowReset.Bytes)
		ok = true
	default:
		c.overflow = true // the flush goroutine cuts the client off
		c.sink.opts.Metrics.SlowConsumers.WithLabelValues(string(SlowDisconnect)).Inc()
	}
	if !c.flushing {
		c.flushing = true
		c.sink.flushes.Add(1)
		go c.flush()
	}
	return ok
}

// WaitRoom implements streams.Paced: it waits until at most half the queue
// limit is queued, so a history replay advances at the client's pace.
func (c *client) WaitRoom(ctx context.Context) bool {
	for {
		c.mu.Lock()
		if c.closed || c.overflow {
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
// batch of shared frames.
func (c *client) flush() {
	defer c.sink.flushes.Done()
	for {
		c.mu.Lock()
		q, overflow, closed := c.queue, c.overflow, c.closed
		c.queue, c.queued = nil, 0
		c.signalRoom()
		if closed || (!overflow && q == nil) {
			recycle(q)
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if overflow {
			recycle(q)
			c.finish(": slow consumer: more than " + strconv.Itoa(c.sink.opts.QueueBytes) +
				" bytes queued, disconnecting; reconnect resumes with Last-Event-ID\n\n")
			return
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.sink.opts.WriteTimeout))
		bufs := *q // WriteTo consumes its receiver; q keeps the array for reuse
		_, err := bufs.WriteTo(c.conn)
		recycle(q)
		if err != nil {
			c.close("write failed: " + err.Error())
			return
		}
		c.timer.Reset(c.sink.opts.Heartbeat)
	}
}

// finish writes a last comment, best effort, and closes.
func (c *client) finish(comment string) {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.conn.Write([]byte(comment))
	c.close("slow consumer")
}

// beat runs after Heartbeat of silence: it notices a peer that has gone
// (fasthttp gives no signal) or keeps proxies and the browser content.
func (c *client) beat() {
	if peerClosed(c.raw) {
		c.close("client went away")
		return
	}
	if !c.Send(c.sink.ping) {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if !closed {
			c.timer.Reset(c.sink.opts.Heartbeat)
		}
	}
}

// close releases everything the client holds. It is safe to call more than
// once and from any goroutine except under a topic lock.
func (c *client) close(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	recycle(c.queue)
	c.queue, c.queued = nil, 0
	c.signalRoom()
	subs := c.subs
	c.subs = nil
	hangup := c.hangup
	c.mu.Unlock()

	c.timer.Stop()
	for _, s := range subs {
		s.Close()
	}
	c.sink.hangups.forget(c, hangup)
	_ = c.conn.Close()
	c.sink.remove(c)
	c.sink.opts.Logger.Debug("stream closed", "remote", c.conn.RemoteAddr(), "reason", reason)
}
