package limit

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The descriptor tests lower RLIMIT_NOFILE, which cannot be raised again
// past the hard limit: they run in a child process of their own.
func inChild(t *testing.T, name string) bool {
	if os.Getenv("LIMIT_TEST_CHILD") == name {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LIMIT_TEST_CHILD="+name)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return false
}

// lines is a log destination whose lines a test can wait for.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

func (l lines) await(t *testing.T, sub string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-l:
			if strings.Contains(s, sub) {
				return
			}
		case <-timeout:
			t.Fatalf("no log line with %q", sub)
		}
	}
}

// exhaust opens /dev/null until the process has no descriptor left.
func exhaust(t *testing.T) []*os.File {
	t.Helper()
	var held []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			return held
		}
		held = append(held, f)
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// shortage is a listener in a process out of descriptors, with a client
// waiting in its backlog: Accept is under way and has logged the shortage.
type shortage struct {
	ln     *Listener
	logs   lines
	client net.Conn
	held   []*os.File // every descriptor but the client's
}

func startShortage(t *testing.T) *shortage {
	t.Helper()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &shortage{logs: make(lines, 16)}
	s.ln = NewListener(inner, ListenerOptions{Logger: slog.New(slog.NewTextHandler(s.logs, nil))})
	t.Cleanup(func() { s.ln.Close() })
	s.held = exhaust(t)
	s.held[len(s.held)-1].Close() // one for the client's end; the server's gets EMFILE
	s.held = s.held[:len(s.held)-1]
	t.Cleanup(func() { closeAll(s.held) })
	if s.client, err = net.Dial("tcp", inner.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })
	return s
}

func TestListenerWaitsOutDescriptorShortage(t *testing.T) {
	if !inChild(t, t.Name()) {
		return
	}
	s := startShortage(t)
	type accepted struct {
		c   net.Conn
		err error
	}
	got := make(chan accepted, 1)
	go func() { c, err := s.ln.Accept(); got <- accepted{c, err} }()
	s.logs.await(t, "out of file descriptors")
	select {
	case a := <-got:
		t.Fatalf("Accept returned while out of descriptors: %v", a.err)
	default:
	}
	closeAll(s.held) // a stream ends: the waiting connection is taken
	a := <-got
	if a.err != nil {
		t.Fatalf("Accept after descriptors came back: %v", a.err)
	}
	defer a.c.Close()
	if _, err := s.client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(a.c, b); err != nil || b[0] != 'x' {
		t.Fatalf("the accepted connection is not the client's: %q %v", b, err)
	}
}

func TestListenerCloseEndsTheWait(t *testing.T) {
	if !inChild(t, t.Name()) {
		return
	}
	s := startShortage(t)
	got := make(chan error, 1)
	go func() { _, err := s.ln.Accept(); got <- err }()
	s.logs.await(t, "out of file descriptors")
	s.ln.Close() // shutdown while waiting
	if err := <-got; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// fasthttp sets no deadline before a connection's first byte: the listener
// does, so a connection that sends nothing cannot be held open forever.
func TestListenerFirstByteDeadline(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, ListenerOptions{FirstByte: 50 * time.Millisecond})
	defer ln.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read from a silent client: %v, want a timeout", err)
	}
}

// Past MaxRequests connections that are not streams, a new one is answered
// 503 at once; a connection hijacked or closed makes room.
func TestListenerMaxRequests(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, ListenerOptions{MaxRequests: 2})
	defer ln.Close()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial()
	dial()
	first, second := <-accepted, <-accepted
	defer first.Close()
	defer second.Close()

	refused := dial()
	_ = refused.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(refused), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !json.Valid(body) {
		t.Fatalf("third connection: %d, Retry-After %q, body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := ln.Requests(); n != 2 {
		t.Fatalf("%d connections counted, want 2", n)
	}
	ln.ConnState(first, fasthttp.StateHijacked) // a stream now: it no longer counts
	dial()
	third := <-accepted
	defer third.Close()

	// An idle keep-alive gives its place to a new connection.
	ln.ConnState(second, fasthttp.StateIdle)
	dial()
	fourth := <-accepted
	defer fourth.Close()
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("the idle connection was not closed for the new one")
	}
	ln.ConnState(second, fasthttp.StateClosed) // what fasthttp then reports
	if n := ln.Requests(); n != 2 {
		t.Fatalf("%d connections counted, want 2", n)
	}
	ln.Close()
	for range accepted {
	}
}

// One client address may hold only MaxRequestsPerPeer of the places, so
// that it cannot take them all with heads it never finishes: past it, one
// of its own idle keep-alives goes, or it gets 503, while another address
// and a trusted proxy still get in.
func TestListenerMaxRequestsPerPeer(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, ListenerOptions{MaxRequests: 10, MaxRequestsPerPeer: 2,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}})
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	refused := func(c net.Conn) bool {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == 503
	}
	dial("127.0.0.1")
	dial("127.0.0.1")
	first, second := <-accepted, <-accepted
	if !refused(dial("127.0.0.1")) {
		t.Fatal("a third connection from the same address was not refused")
	}
	dial("127.0.0.2") // another address
	dial("127.0.0.3") // a trusted proxy: not counted per peer
	dial("127.0.0.3")
	dial("127.0.0.3")
	for range 4 {
		c := <-accepted
		defer c.Close()
	}
	if n := ln.Requests(); n != 6 {
		t.Fatalf("%d connections counted, want 6", n)
	}
	// An idle keep-alive of the same address gives its place.
	ln.ConnState(second, fasthttp.StateIdle)
	dial("127.0.0.1")
	third := <-accepted
	defer third.Close()
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("the idle connection was not closed for the new one")
	}
	ln.ConnState(second, fasthttp.StateClosed) // what fasthttp then reports
	ln.ConnState(first, fasthttp.StateHijacked)
	dial("127.0.0.1") // first became a stream: room again
	fourth := <-accepted
	defer fourth.Close()
	first.Close()
	ln.Close()
	for range accepted {
	}
}
