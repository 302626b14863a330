package sse

import (
	"log/slog"
	"math/rand/v2"
	"net"
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
	// MaxQueuedBytes bounds the frames queued (or being written) for all
	// clients together; past it the clients furthest behind get their
	// slow policy first.
	MaxQueuedBytes int
	// Coalesce, when positive, is the least time between two writes to a
	// client: its frames that come sooner wait for the rest of it and
	// share one write (less CPU per delivery at high event rates, for up
	// to that much latency), while a client written longer ago gets its
	// frame at once.
	Coalesce time.Duration
	Metrics  *Metrics
	Logger   *slog.Logger
}

// Sink owns the SSE connections. A connection is taken over from fasthttp
// (hijacked) once its request is validated, so an idle stream costs a small
// struct, its place on the heartbeats' wheel and its socket: no goroutine,
// no timer and no buffers. Frames go
// out from a few writers (writers.go); a goroutine of its own exists
// only while a client's socket is full.
type Sink struct {
	opts       SinkOptions
	ping       *streams.Frame
	slowReset  *streams.Frame
	hangups    *hangups
	writers    *writers
	heartbeats *heartbeats

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
	flushes sync.WaitGroup

	budget budget
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
	if opts.MaxQueuedBytes <= 0 {
		opts.MaxQueuedBytes = 256 << 20
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
	k := &Sink{opts: opts, ping: streams.Comment("ping"), slowReset: slowReset, hangups: newHangups(),
		writers: newWriters(opts.Coalesce, opts.Metrics.Writes), heartbeats: newHeartbeats(opts.Heartbeat), clients: make(map[*client]struct{})}
	k.budget.total = &opts.Metrics.queued
	k.budget.max = int64(opts.MaxQueuedBytes)
	return k
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
	// Heartbeats first: a beat may hand a client to a writer. The writers
	// end once their ready lists are empty, having started a flush for
	// every closed client on them.
	k.heartbeats.close()
	k.writers.close()
	k.flushes.Wait()
	k.hangups.close()
	k.budget.close()
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

// SubscribeFunc joins a client to its streams; it returns what to close
// when the client leaves.
type SubscribeFunc func(r streams.Receiver) ([]*streams.Subscription, error)

// Stream is what one stream asks of the sink besides its connection.
type Stream struct {
	// Policy is what happens when the client cannot keep up.
	Policy Policy
	// Header is extra lines for the response head (CORS), each ending in
	// "\r\n"; Serve refuses lines that are not well-formed header fields.
	Header string
	// Until, when set, is called once the stream is live (subscribed) with
	// end, which ends the stream: last (nil: none) is queued after
	// everything queued before it, even past the queue limit, nothing is
	// queued after it, and the connection is closed once it is written.
	// Until may call end at once, from any goroutine; end is harmless once
	// the stream has ended. Until returns stop, called once when the stream
	// ends, whichever way (also after end: stop must be harmless then).
	Until func(end func(last *streams.Frame)) (stop func())
	// Subscribe joins the client to its streams.
	Subscribe SubscribeFunc
}

// Serve takes over a hijacked connection whose request was validated: it
// joins the client to its streams with s.Subscribe, then writes the
// response head and returns, leaving the connection to the sink. If
// subscribing fails or s.Header is malformed, nothing has been written:
// Serve returns the error and the connection is the caller's again, to
// answer with an error response and close. ended run once the stream has
// ended, whichever way (refused included).
func (k *Sink) Serve(conn net.Conn, s Stream, ended ...func()) error {
	if err := checkHeader(s.Header); err != nil {
		runAll(ended)
		return err
	}
	c := &client{sink: k, conn: conn, resetWhenSlow: s.Policy == SlowReset, ended: ended}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	// The head is queued first and the flush is held (flushing) until the
	// client has joined: frames queued meanwhile follow the head, and a
	// refused stream can still get a real error response instead of a 200.
	head := k.head(s.Header)
	k.budget.force(len(head))
	c.queue = batches.Get().(*net.Buffers)
	*c.queue = append(*c.queue, head)
	c.queued = len(head)
	c.flushing = true
	k.flushes.Add(1)
	c.lastWrite.Store(nanotime())
	c.hbSlot = -1
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		c.closed = true // nothing else has seen c yet
		c.dropQueue()
		conn.Close()
		c.flushing = false
		k.flushes.Done()
		runAll(ended)
		return nil
	}
	k.clients[c] = struct{}{}
	if c.raw != nil && rawWrites && c.raw.Control(func(fd uintptr) { c.fd = int(fd) }) == nil {
		c.w = k.writers.pick()
	}
	k.mu.Unlock()
	k.opts.Metrics.Clients.Inc()
	c.mu.Lock()
	if !c.closed { // a Drop or Close may have come first; its forget is done
		c.hangup = k.hangups.watch(c)
		k.heartbeats.add(c)
	}
	c.mu.Unlock()

	subs, err := s.Subscribe(c)
	c.mu.Lock()
	c.subs = subs
	gone := c.closed
	c.mu.Unlock()
	if err != nil {
		c.release("subscribe failed: "+err.Error(), false)
		c.flush() // only ends the held flush: c is closed
		if gone {
			return nil // dropped meanwhile: the connection is closed already
		}
		return err
	}
	if gone { // dropped while joining: release what it joined
		for _, sub := range subs {
			sub.Close()
		}
	}
	if s.Until != nil && !gone {
		c.watchEnd(s.Until)
	}
	c.flush() // the head and whatever was queued after it
	return nil
}

// head is the HTTP response head with extra (checked lines), and the retry
// field. The body has no length: it ends when the connection does.
func (k *Sink) head(extra string) []byte {
	h := "HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\n" +
		"Connection: close\r\n" + extra
	return append([]byte(h+"\r\n"), streams.RetryFrame(k.retry()).Bytes...)
}

// retry is a connection's reconnect delay in milliseconds, drawn from
// [Retry, 2 x Retry): clients cut off together (a restart, a Drop) come
// back spread out instead of all at once.
func (k *Sink) retry() int64 {
	base := max(k.opts.Retry.Milliseconds(), 1)
	return base + rand.Int64N(base)
}

func (k *Sink) remove(c *client) {
	k.mu.Lock()
	delete(k.clients, c)
	k.mu.Unlock()
	k.opts.Metrics.Clients.Dec()
}
