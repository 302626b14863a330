package handlers

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// loopback is a connected pair of TCP sockets; the server side is wrapped
// by StrictHeads as the listener would.
func loopback(t *testing.T) (client net.Conn, server *headConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	strict := StrictHeads(ln)
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := strict.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return client, c.(*headConn)
}

// readHead reads from c until the head ends (the state leaves the head) or
// a Read fails; it returns what was delivered and the error.
func readHead(c *headConn) (string, error) {
	var got []byte
	buf := make([]byte, 64)
	for c.state < inBody {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got), err
		}
	}
	return string(got), nil
}

// TestHeadConn checks heads on the wire, whole or one byte per write: a
// good head passes untouched, a bad one stops at the byte that breaks it,
// with the bytes before it delivered, and the error sticks.
func TestHeadConn(t *testing.T) {
	for _, tc := range []struct{ raw, reason string }{
		{"GET /a?b=c HTTP/1.1\r\nHost: kf\r\nX-A: b\tc é\r\n\r\n", ""},
		{"\r\nGET / HTTP/1.1\r\nHost: kf\r\n\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: kf\r\nfoo\r\n\r\n", "without a colon"},
		{"GET / HTTP/1.1\r\nHost: kf\r\nX: b\nc\r\n\r\n", "bare LF"},
		{"GET / HTTP/1.1\nHost: kf\r\n\r\n", "bare LF"},
		{"GET / HTTP/1.1\r\nHost: kf\r\n\n", "bare LF"},
		{"GET /\x01 HTTP/1.1\r\nHost: kf\r\n\r\n", "request line"},
		{"GET / HTTP/1.1\r\nHost: kf\r\n X: y\r\n\r\n", "folded"},
		{"GET / HTTP/1.1\r\nHost: kf\r\nX Y: z\r\n\r\n", "header name"},
		{"GET / HTTP/1.1\r\nHost: kf\r\n: z\r\n\r\n", "without a name"},
		{"GET / HTTP/1.1\r\nHost: k\x7ff\r\n\r\n", "header value"},
		{"GET / HTTP/1.1\rHost: kf\r\n\r\n", "CR without LF"},
		{"\x16\x03\x01", "before the request line"}, // TLS to a plain port
	} {
		for _, split := range []bool{false, true} {
			client, server := loopback(t)
			go func() {
				if !split {
					_, _ = io.WriteString(client, tc.raw)
					return
				}
				for i := range len(tc.raw) {
					if _, err := io.WriteString(client, tc.raw[i:i+1]); err != nil {
						return
					}
				}
			}()
			got, err := readHead(server)
			var mh *MalformedHead
			switch {
			case tc.reason == "" && err != nil:
				t.Errorf("%q (split %v): %v", tc.raw, split, err)
			case tc.reason == "" && got != tc.raw:
				t.Errorf("%q (split %v): delivered %q", tc.raw, split, got)
			case tc.reason != "" && (!errors.As(err, &mh) || !strings.Contains(mh.Reason, tc.reason)):
				t.Errorf("%q (split %v): %q, %v; want an error saying %q", tc.raw, split, got, err, tc.reason)
			case tc.reason != "" && !strings.HasPrefix(tc.raw, got):
				t.Errorf("%q (split %v): delivered %q, not a prefix", tc.raw, split, got)
			case tc.reason != "":
				if _, again := server.Read(make([]byte, 8)); again != err {
					t.Errorf("%q: the error does not stick: %v", tc.raw, again)
				}
			}
		}
	}
}

// TestHeadConnNextRequest: after a request read in full the next head is
// checked; after a chunked body or bytes beyond the body, the connection
// is left unchecked rather than misread.
func TestHeadConnNextRequest(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first         string
		contentLength int
		want          headState
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: kf\r\n\r\n", -2, atRequest},
		{"body read", "POST / HTTP/1.1\r\nHost: kf\r\nContent-Length: 3\r\n\r\nabc", 3, atRequest},
		{"chunked", "POST / HTTP/1.1\r\nHost: kf\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", -1, unchecked},
		{"pipelined", "GET / HTTP/1.1\r\nHost: kf\r\n\r\nGET / HTTP/1.1\r\n", -2, unchecked},
	} {
		client, server := loopback(t)
		if _, err := io.WriteString(client, tc.first); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		for got := 0; got < len(tc.first); {
			n, err := server.Read(buf)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got += n
		}
		server.nextRequest(tc.contentLength)
		if server.state != tc.want {
			t.Errorf("%s: state %d, want %d", tc.name, server.state, tc.want)
		}
	}
}

// TestSocket: a hijacked stream keeps the socket, not the wrappers.
func TestSocket(t *testing.T) {
	_, server := loopback(t)
	if _, ok := socket(server).(*net.TCPConn); !ok {
		t.Fatalf("socket is %T", socket(server))
	}
}

// FuzzHeadConnNeverHangs: whatever head the wire check lets end, fasthttp
// parses from those bytes alone: it never waits for more, as it did for a
// header line without a colon.
func FuzzHeadConnNeverHangs(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: kf\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: kf\r\nfoo\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: kf\r\nX: b\n c\r\n\r\n",
		"POST /api/log/x HTTP/1.1\r\nHost: kf\r\nContent-Length: 2\r\n\r\n{}",
		"\r\n\r\nGET /a%00 HTTP/1.0\r\n\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var c headConn
		end := -1
		for i := 0; i < len(raw) && end < 0; i++ {
			if c.step(raw[i]) != "" {
				return
			}
			if c.state == inBody {
				end = i + 1
			}
		}
		if end < 0 {
			return
		}
		var h fasthttp.RequestHeader
		err := h.Read(bufio.NewReader(strings.NewReader(raw[:end])))
		if err != nil && strings.Contains(err.Error(), "EOF") {
			t.Fatalf("%q: fasthttp wants more than the head: %v", raw[:end], err)
		}
	})
}
