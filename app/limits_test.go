package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams/testkit"
)

// reply is one answer to a raw GET; a 200 stream stays open on conn until
// the test closes it or ends.
type reply struct {
	conn   net.Conn
	status int
	header http.Header
	body   map[string]any // the JSON error of a refusal
}

// getFrom sends GET path to addr from the loopback address local (Linux
// routes all of 127/8 to lo, so each is a distinct client), with headers as
// name, value pairs.
func getFrom(t *testing.T, addr, local, path string, headers ...string) reply {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: keyflux\r\n"
	for i := 0; i+1 < len(headers); i += 2 {
		req += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, local, err)
	}
	_ = conn.SetDeadline(time.Time{})
	r := reply{conn: conn, status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r.body); err != nil || r.body["error"] == nil {
			t.Fatalf("GET %s: %d with body %q, want a JSON error", path, resp.StatusCode, b)
		}
		conn.Close()
	}
	return r
}

// refused checks a refusal's status, Retry-After and error text.
func (r reply) refused(t *testing.T, status int, flag string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%v)", r.status, status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q, want whole seconds", r.header.Get("Retry-After"))
	}
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, flag) {
		t.Fatalf("error %q does not name %s", msg, flag)
	}
}

func (r reply) ok(t *testing.T) reply {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%v), want a stream", r.status, r.body)
	}
	return r
}

// openStreams are the streams a gate counts.
func (k *keyflux) openStreams() int { n, _ := k.srv.gate.Open(); return n }

func TestMaxClientsPerIP(t *testing.T) {
	k := startKeyflux(t, nil, "--max-clients-per-ip", "2")
	addr := k.srv.addr()
	a := getFrom(t, addr, "127.0.0.1", "/streams/channels/a").ok(t)
	getFrom(t, addr, "127.0.0.1", "/streams?sub=x:channels/b").ok(t) // the combined route counts too
	getFrom(t, addr, "127.0.0.1", "/streams/channels/c").refused(t, http.StatusTooManyRequests, "--max-clients-per-ip")
	getFrom(t, addr, "127.0.0.1", "/streams?sub=x:channels/c").refused(t, http.StatusTooManyRequests, "--max-clients-per-ip")
	getFrom(t, addr, "127.0.0.2", "/streams/channels/c").ok(t) // another address has its own
	if code, _ := k.get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d while an address is at its limit", code)
	}
	a.conn.Close() // the client leaves: its place is free again
	testkit.Eventually(t, "the stream that left to be released", func() bool { return k.openStreams() == 2 })
	getFrom(t, addr, "127.0.0.1", "/streams/channels/c").ok(t)
}

func TestStreamRatePerIP(t *testing.T) {
	k := startKeyflux(t, nil, "--stream-rate-per-ip", "0.5", "--stream-burst-per-ip", "3")
	addr := k.srv.addr()
	for i := range 3 {
		getFrom(t, addr, "127.0.0.1", "/streams/channels/r"+strconv.Itoa(i)).ok(t).conn.Close()
	}
	r := getFrom(t, addr, "127.0.0.1", "/streams/channels/r3")
	r.refused(t, http.StatusTooManyRequests, "--stream-rate-per-ip")
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); s > 2 {
		t.Fatalf("Retry-After %d s: at 0.5/s the next stream is at most 2 s away", s)
	}
	getFrom(t, addr, "127.0.0.2", "/streams/channels/r3").ok(t)
	// Bad input is refused before the limits and costs no token.
	if code, _ := k.get("/streams/channels/x?slow=bogus"); code != http.StatusBadRequest {
		t.Fatalf("bad input: %d, want 400", code)
	}
}

// TestStreamRatePerSub: a combined stream pays its address's rate for each
// of its subs, so 32 subs cost what 32 streams do, not one token.
func TestStreamRatePerSub(t *testing.T) {
	k := startKeyflux(t, nil, "--stream-rate-per-ip", "0.1", "--stream-burst-per-ip", "40")
	addr := k.srv.addr()
	combined := func(from int) string {
		var subs []string
		for i := range 32 {
			subs = append(subs, "s"+strconv.Itoa(i)+":channels/c"+strconv.Itoa(from+i))
		}
		return combinedPath(subs...)
	}
	getFrom(t, addr, "127.0.0.1", combined(0)).ok(t).conn.Close()
	getFrom(t, addr, "127.0.0.1", combined(100)).refused(t, http.StatusTooManyRequests, "--stream-rate-per-ip")
	// What is left of the burst still opens single streams.
	for i := range 8 {
		getFrom(t, addr, "127.0.0.1", "/streams/channels/one"+strconv.Itoa(i)).ok(t).conn.Close()
	}
}

func TestTrustedProxies(t *testing.T) {
	k := startKeyflux(t, nil, "--max-clients-per-ip", "1", "--trusted-proxies", "127.0.0.2")
	addr := k.srv.addr()
	// From a peer that is no proxy the header is ignored: both count as 127.0.0.1.
	getFrom(t, addr, "127.0.0.1", "/streams/channels/a", "X-Forwarded-For", "203.0.113.1").ok(t)
	getFrom(t, addr, "127.0.0.1", "/streams/channels/a", "X-Forwarded-For", "203.0.113.2").
		refused(t, http.StatusTooManyRequests, "--max-clients-per-ip")
	// Through the proxy each forwarded client counts on its own, whatever
	// the client itself wrote to the left.
	getFrom(t, addr, "127.0.0.2", "/streams/channels/a", "X-Forwarded-For", "203.0.113.1").ok(t)
	getFrom(t, addr, "127.0.0.2", "/streams/channels/a", "X-Forwarded-For", "203.0.113.1, 203.0.113.2").ok(t)
	getFrom(t, addr, "127.0.0.2", "/streams/channels/a", "X-Forwarded-For", "198.51.100.7, 203.0.113.1").
		refused(t, http.StatusTooManyRequests, "--max-clients-per-ip")
}

// Every way a stream can end gives its place back.
func TestStreamCountsReleased(t *testing.T) {
	k := startKeyflux(t, nil, "--max-clients-per-ip", "1", "--queue-bytes", "1024",
		"--write-timeout", "200ms", "--max-topics", "2")
	addr := k.srv.addr()

	// Subscribe failure: a third distinct topic while two have clients.
	getFrom(t, addr, "127.0.0.1", "/streams/channels/a").ok(t)
	getFrom(t, addr, "127.0.0.2", "/streams/channels/b").ok(t)
	getFrom(t, addr, "127.0.0.3", "/streams/channels/c").refused(t, http.StatusServiceUnavailable, "--max-topics")
	testkit.Eventually(t, "the refused stream to be released", func() bool { return k.openStreams() == 2 })
	getFrom(t, addr, "127.0.0.3", "/streams/channels/a").ok(t)

	// A dropped stream (what a shutdown does to every stream) is released.
	if n := k.srv.sink.Drop("test"); n != 3 {
		t.Fatalf("dropped %d streams, want 3", n)
	}
	testkit.Eventually(t, "dropped streams to be released", func() bool { return k.openStreams() == 0 })

	// A slow consumer cut off is released: a client that reads nothing
	// while a megabyte a second is published to it.
	slow := getFrom(t, addr, "127.0.0.4", "/streams/channels/big").ok(t)
	if tc, ok := slow.conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	payload := strings.Repeat("x", 8<<10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan struct{})
	go func() {
		defer close(published)
		for ctx.Err() == nil {
			k.rc.Do(ctx, k.rc.B().Publish().Channel("big").Message(payload).Build())
		}
	}()
	testkit.Eventually(t, "the slow consumer to be cut off and released", func() bool { return k.openStreams() == 0 })
	cancel()
	<-published

	// Shutdown releases what is still open.
	getFrom(t, addr, "127.0.0.1", "/streams/channels/a").ok(t)
	getFrom(t, addr, "127.0.0.2", "/streams?sub=x:channels/b").ok(t)
	k.shutdown()
	if n := k.openStreams(); n != 0 {
		t.Fatalf("%d streams still counted after shutdown", n)
	}
}
