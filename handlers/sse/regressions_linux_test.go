package sse

import (
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyflux/keyflux/streams"
)

// A client closed (by Drop or Close) after Serve added it to the sink but
// before Serve registered it with the hang-up watcher stays in the
// watcher's map for the sink's lifetime, with its conn, timer and queue:
// close read c.hangup while it was still 0, so its forget did nothing,
// and watch then registered the socket, not yet closed. (Serve should not
// watch a client that is already closed.) In production the window is a
// microsecond wide; here the gauge Serve increments between the two steps
// runs the Drop, and the connection's Close holds that Drop until watch
// has run.
func TestDropDuringServeLeaksAWatch(t *testing.T) {
	var k *testSink
	conn := &heldConn{closing: make(chan struct{}), release: make(chan struct{})}
	dropped := make(chan struct{})
	m := NewMetrics(nil)
	m.Clients = hookedGauge{Gauge: m.Clients, inc: func() {
		go func() {
			defer close(dropped)
			k.Drop("racing drop")
		}()
		<-conn.closing // the Drop has marked the client closed and is closing its conn
	}}
	k = newSink(t, SinkOptions{Metrics: m})

	_, srv := loopback(t)
	conn.TCPConn = srv
	k.Serve(conn, Stream{Subscribe: func(streams.Receiver) ([]*streams.Subscription, error) { return nil, nil }})
	close(conn.release)
	<-dropped

	if k.Clients() != 0 {
		t.Fatalf("clients %d after Drop", k.Clients())
	}
	k.hangups.mu.Lock()
	defer k.hangups.mu.Unlock()
	for id, c := range k.hangups.clients {
		t.Errorf("the hang-up watcher still holds closed client %d (closed %v)", id, c.closed)
	}
}

// heldConn is a connection whose Close waits until release is closed.
type heldConn struct {
	*net.TCPConn
	once             sync.Once
	closing, release chan struct{}
}

func (c *heldConn) Close() error {
	c.once.Do(func() { close(c.closing) })
	<-c.release
	return c.TCPConn.Close()
}

type hookedGauge struct {
	prometheus.Gauge
	inc func()
}

func (g hookedGauge) Inc() {
	g.Gauge.Inc()
	g.inc()
}

// Close is not idempotent: a second call writes 8 bytes to, then closes,
// the file descriptor numbers its hang-up watcher had, which by then may
// belong to any file of the process.
func TestSecondCloseClosesSomeoneElsesFile(t *testing.T) {
	k := NewSink(SinkOptions{})
	wake := k.hangups.wake
	k.Close()
	var mine *os.File // a file of ours that now has the number of the watcher's eventfd
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for range 1000 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		if int(f.Fd()) == wake {
			mine = f
			break
		}
	}
	if mine == nil {
		t.Fatal("the eventfd's number was not reused by 1000 opens: cannot check")
	}
	k.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(wake, &st); err != nil {
		t.Fatalf("a second Close closed fd %d, which was this test's %s: %v", wake, mine.Name(), err)
	}
}
