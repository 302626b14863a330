package sse

import (
	"log/slog"
	"math"
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

// SubscribeFunc joins a client to its streams; it returns what to close
// when the client leaves.
type SubscribeFunc func(r streams.Receiver) ([]*streams.Subscription, error)

// Serve takes over a hijacked connection whose request was validated: it
// writes the response head, joins the client to its streams with
// subscribe and returns, leaving the connection to the sink.
func (k *Sink) Serve(conn net.Conn, policy Policy, subscribe SubscribeFunc) {
	c := &client{sink: k, conn: conn, resetWhenSlow: policy == SlowReset}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	_ = conn.SetWriteDeadline(time.Now().Add(k.opts.WriteTimeout))
	if _, err := conn.Write(k.head()); err != nil {
		conn.Close()
		return
	}
	// Armed only once c.timer is set: beat and flush reset it, and a
	// heartbeat shorter than this gap would fire first.
	c.timer = time.AfterFunc(time.Duration(math.MaxInt64), c.beat)
	c.timer.Reset(k.opts.Heartbeat)
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
	if !c.closed { // a Drop or Close may have come first; its forget is done
		c.hangup = k.hangups.watch(c)
	}
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
	return append([]byte(h+"\r\n"), streams.RetryFrame(k.opts.Retry.Milliseconds()).Bytes...)
}

func (k *Sink) remove(c *client) {
	k.mu.Lock()
	delete(k.clients, c)
	k.mu.Unlock()
	k.opts.Metrics.Clients.Dec()
}
