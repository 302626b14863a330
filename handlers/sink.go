package handlers

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// SinkOptions configure how frames reach clients.
type SinkOptions struct {
	// Heartbeat is the idle time after which a comment is sent; it also
	// bounds how long a vanished client goes unnoticed.
	Heartbeat time.Duration
	// Retry is the reconnect delay the browser is told to use.
	Retry time.Duration
	// WriteTimeout cuts off a client whose socket accepts nothing for this long.
	WriteTimeout time.Duration
	// QueueBytes bounds each client's queue of unsent frames; a client
	// that falls further behind is disconnected (and resumes on reconnect).
	QueueBytes int
	// AllowOrigin, when set, is sent as Access-Control-Allow-Origin.
	AllowOrigin string
	Metrics     *Metrics
	Logger      *slog.Logger
}

// Sink owns the SSE connections. A connection is taken over from fasthttp
// (hijacked) once its request is validated, so an idle stream costs a small
// struct, a timer and its socket: no goroutine and no buffers. A goroutine
// exists only while a client has bytes to write.
type Sink struct {
	opts      SinkOptions
	ping      *streams.Frame
	slowReset *streams.Frame
	hangups   *hangups

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
	flushes sync.WaitGroup
}

// NewSink returns a sink with defaults for unset options.
func NewSink(opts SinkOptions) *Sink {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = 2 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 1 << 20
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	slowReset, _ := streams.EncodeFrame("", "reset", map[string]string{
		"reason": "slow-consumer", "detail": "events were dropped because the client read too slowly",
	}, nil)
	return &Sink{opts: opts, ping: streams.Comment("ping"), slowReset: slowReset, hangups: newHangups(),
		clients: make(map[*client]struct{})}
}

// Clients returns how many streams are open.
func (k *Sink) Clients() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.clients)
}

// Close ends every stream and waits for writes in flight. Browsers reconnect
// (to this or another process) and resume with Last-Event-ID.
func (k *Sink) Close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.Drop("server shutting down")
	k.flushes.Wait()
	k.hangups.close()
}

// Drop ends every open stream but keeps accepting new ones: to a browser it
// is a network blip, so it reconnects after its retry delay and resumes with
// Last-Event-ID. Tests use it to prove that; it returns how many it ended.
func (k *Sink) Drop(reason string) int {
	k.mu.Lock()
	all := make([]*client, 0, len(k.clients))
	for c := range k.clients {
		all = append(all, c)
	}
	k.mu.Unlock()
	for _, c := range all {
		c.close(reason)
	}
	return len(all)
}

// subscribeFunc joins a client to its streams; it returns what to close
// when the client leaves.
type subscribeFunc func(r streams.Receiver) ([]*streams.Subscription, error)

// serve runs on the hijacked connection: it writes the response head, joins
// the client to its streams and returns, leaving the connection to the sink.
func (k *Sink) serve(conn net.Conn, policy string, subscribe subscribeFunc) {
	c := &client{sink: k, conn: conn, resetWhenSlow: policy == slowReset}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	_ = conn.SetWriteDeadline(time.Now().Add(k.opts.WriteTimeout))
	if _, err := conn.Write(k.head()); err != nil {
		conn.Close()
		return
	}
	c.timer = time.AfterFunc(k.opts.Heartbeat, c.beat)
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		c.timer.Stop()
		conn.Close()
		return
	}
	k.clients[c] = struct{}{}
	k.mu.Unlock()
	k.opts.Metrics.Clients.Inc()
	c.mu.Lock()
	c.hangup = k.hangups.watch(c)
	c.mu.Unlock()

	subs, err := subscribe(c)
	c.mu.Lock()
	c.subs = subs
	gone := c.closed
	c.mu.Unlock()
	if err != nil {
		c.close("subscribe failed: " + err.Error())
	} else if gone { // dropped while joining: release what it joined
		for _, s := range subs {
			s.Close()
		}
	}
}

// head is the HTTP response head and the retry field. The body has no
// length: it ends when the connection does.
func (k *Sink) head() []byte {
	h := "HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\n" +
		"Connection: close\r\n"
	if k.opts.AllowOrigin != "" {
		h += "Access-Control-Allow-Origin: " + k.opts.AllowOrigin + "\r\n"
	}
	h += "\r\nretry: " + strconv.FormatInt(k.opts.Retry.Milliseconds(), 10) + "\n\n"
	return []byte(h)
}

func (k *Sink) remove(c *client) {
	k.mu.Lock()
	delete(k.clients, c)
	k.mu.Unlock()
	k.opts.Metrics.Clients.Dec()
}

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
		c.sink.opts.Metrics.SlowConsumers.WithLabelValues(slowReset).Inc()
		if c.queue == nil {
			c.queue = batches.Get().(*net.Buffers)
		}
		clear(*c.queue)
		*c.queue = append((*c.queue)[:0], c.sink.slowReset.Bytes)
		c.queued = len(c.sink.slowReset.Bytes)
		ok = true
	default:
		c.overflow = true // the flush goroutine cuts the client off
		c.sink.opts.Metrics.SlowConsumers.WithLabelValues(slowDisconnect).Inc()
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
