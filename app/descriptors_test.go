package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// The descriptor tests run Keyflux in a child process whose open-file
// limit is lowered (it cannot be raised again), against a redis-server of
// the parent's.
const childArgsEnv, childNofileEnv = "LIMITS_TEST_KEYFLUX_ARGS", "LIMITS_TEST_NOFILE"

// TestKeyfluxChild is the child: it runs Keyflux until SIGTERM.
func TestKeyfluxChild(t *testing.T) {
	args := os.Getenv(childArgsEnv)
	if args == "" {
		t.Skip("the child process of the descriptor tests")
	}
	n, _ := strconv.ParseUint(os.Getenv(childNofileEnv), 10, 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		t.Fatal(err)
	}
	headerTimeout = time.Second // so that the slowloris test takes a second, not ten
	err := run(context.Background(), strings.Fields(args), os.Stderr, func(s *server) {
		fmt.Printf("LISTENING %s\n", s.addr())
	})
	if err != nil {
		t.Fatalf("keyflux stopped: %v", err)
	}
}

type child struct {
	addr   string
	logs   *syncBuffer
	exited chan struct{}
}

// startChild runs Keyflux with flags in a child process limited to nofile
// descriptors.
func startChild(t *testing.T, nofile int, flags ...string) *child {
	t.Helper()
	rs := testkit.StartRedis(t)
	args := append([]string{"--listen", "127.0.0.1:0", "--redis-url", rs.URL()}, flags...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyfluxChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+strings.Join(args, " "), childNofileEnv+"="+strconv.Itoa(nofile))
	c := &child{logs: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				listening <- a
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exited
			t.Error("keyflux did not stop on SIGTERM")
		}
	})
	select {
	case c.addr = <-listening:
	case <-c.exited:
		t.Fatalf("keyflux did not start:\n%s", c.logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("keyflux did not start within 20 s:\n%s", c.logs)
	}
	return c
}

// alive fails the test if the child has exited.
func (c *child) alive(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
		t.Fatalf("keyflux exited:\n%s", c.logs)
	default:
	}
}

// healthz asks /healthz on a connection of its own.
func (c *child) healthz(t *testing.T) int {
	t.Helper()
	c.alive(t)
	req, _ := http.NewRequest("GET", "http://"+c.addr+"/healthz", nil)
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("/healthz: %v\n%s", err, c.logs)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Finding 2: more connections than descriptors once stopped the server.
// Now accept waits for descriptors and Keyflux stays up. Streams are opened
// one at a time (all at once, fasthttp's cap on connections being served
// would refuse most) until accept runs short.
func TestDescriptorShortageKeepsServing(t *testing.T) {
	const nofile = 200
	c := startChild(t, nofile, "--max-clients", "10000", "--stream-burst-per-ip", "10000", "--max-clients-per-ip", "10000")
	var conns []net.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for i := 0; !strings.Contains(c.logs.String(), "out of file descriptors"); i++ {
		if i > 2*nofile {
			t.Fatalf("%d streams open with %d descriptors, no shortage logged:\n%s", i, nofile, c.logs)
		}
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatalf("%v; keyflux's log:\n%s", err, c.logs)
		}
		conns = append(conns, conn)
		if _, err := fmt.Fprintf(conn, "GET /streams/channels/c%d HTTP/1.1\r\nHost: keyflux\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
		answered := make(chan int, 1)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				answered <- 0
				return
			}
			answered <- resp.StatusCode
		}()
		// Either the stream opens or the request waits in the backlog and
		// the shortage is logged: the log has no event to await.
		for waiting := true; waiting; {
			select {
			case code := <-answered:
				if code != http.StatusOK {
					t.Fatalf("stream %d: status %d (0: connection lost)\n%s", i, code, c.logs)
				}
				waiting = false
			case <-time.After(5 * time.Millisecond):
				c.alive(t)
				waiting = !strings.Contains(c.logs.String(), "out of file descriptors")
			}
		}
	}
	c.alive(t)
	for _, conn := range conns {
		conn.Close()
	}
	if code := c.healthz(t); code != http.StatusOK {
		t.Fatalf("/healthz %d after the connections closed", code)
	}
	c.alive(t)
}

// Connections that never finish a request head cannot exhaust descriptors
// (fasthttp serves only so many connections at once and refuses the rest)
// and are cut after the head timeout, so /healthz answers again.
func TestSlowlorisCannotStarveHealthz(t *testing.T) {
	const nofile = 200
	c := startChild(t, nofile, "--max-clients", "10000")
	var conns []net.Conn
	for i := range nofile + 100 {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatalf("%v; keyflux's log:\n%s", err, c.logs)
		}
		defer conn.Close()
		if i%2 == 0 { // half send part of a head, half nothing at all
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: keyflux\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, conn)
	}
	// They all come from one address, which may hold only an eighth of the
	// places: another address is served meanwhile.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := other.Get("http://" + c.addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz from another address during the slow connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz from another address during the slow connections: %d", resp.StatusCode)
	}
	// The server ends every one of them: past the caps on connections that
	// are not streams at once with a JSON 503, the others at the timeout.
	refused := 0
	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn) // ends in end of file, or a reset if unread bytes were left
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("slow connection %d still open after 10 s", i)
		}
		if len(b) > 0 && !strings.Contains(string(b), `{"error":`) {
			t.Fatalf("slow connection %d got %q, want a JSON error", i, b)
		}
		if strings.HasPrefix(string(b), "HTTP/1.1 503") {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("%d connections with %d descriptors, none refused", len(conns), nofile)
	}
	c.alive(t)
	if code := c.healthz(t); code != http.StatusOK {
		t.Fatalf("/healthz %d after the slow connections were cut", code)
	}
}

// By default streams stop short of the descriptor limit: past
// --max-clients a stream gets 503 and /healthz still answers.
func TestMaxClientsKeepsAReserve(t *testing.T) {
	const nofile = 200
	c := startChild(t, nofile, "--stream-burst-per-ip", "10000", "--max-clients-per-ip", "10000")
	var open []reply
	for i := 0; ; i++ {
		if i > nofile {
			t.Fatalf("%d streams open with %d descriptors: no reserve kept", i, nofile)
		}
		r := getFrom(t, c.addr, "127.0.0.1", "/streams/channels/c"+strconv.Itoa(i))
		if r.status != http.StatusOK {
			r.refused(t, http.StatusServiceUnavailable, "--max-clients")
			break
		}
		open = append(open, r)
	}
	if len(open) < nofile/2 {
		t.Fatalf("only %d streams with %d descriptors", len(open), nofile)
	}
	for range 3 { // the reserve answers health checks while streams are full
		if code := c.healthz(t); code != http.StatusOK {
			t.Fatalf("/healthz %d with %d streams open", code, len(open))
		}
	}
	open[0].conn.Close()
	testkit.Eventually(t, "a place to free up", func() bool {
		r := getFrom(t, c.addr, "127.0.0.1", "/streams/channels/again")
		return r.status == http.StatusOK
	})
	c.alive(t)
}

// Idle keep-alives count against the connections that are not streams,
// but give their place up to new ones instead of holding it for the idle
// timeout.
func TestIdleKeepAlivesMakeRoom(t *testing.T) {
	const nofile = 200 // room for 33 connections that are not streams
	c := startChild(t, nofile)
	for i := range 100 {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatalf("%v; keyflux's log:\n%s", err, c.logs)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: keyflux\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("keep-alive %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("keep-alive %d: status %d while the others idle", i, resp.StatusCode)
		}
	}
	c.alive(t)
}
