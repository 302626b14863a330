package main

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// labelled reads one sample of /metrics by its full name with labels.
func labelled(t testing.TB, k *keyflux, series string) float64 {
	t.Helper()
	resp, err := plainClient.Get(k.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0 // a labelled counter appears only once counted
}

// openStalledRaw opens path on a socket with a small receive buffer,
// reads up to its "connected" event and never reads again.
func openStalledRaw(t *testing.T, k *keyflux, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10) })
		return err
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(k.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: keyflux\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(conn, 16) // reads no further than it must
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stalled stream: %v", err)
		}
		if line == "event: connected\n" {
			break
		}
	}
	if _, err := r.ReadString('\n'); err != nil { // its data line; the blank line may stay unread
		t.Fatal(err)
	}
	return conn
}

// Stalled readers while events flow: the frames queued for all clients
// together stay under --max-queued-bytes, though each client alone may
// queue half of it and together they would queue four times it; the
// stalled clients get their policy (disconnect) while a client that reads
// gets every event.
func TestMaxQueuedBytesBoundsStalledReaders(t *testing.T) {
	const (
		budget  = 1 << 20
		stalled = 8
		most    = 4000 // events at most (the test's reader buffers 4096); the stalled go long before
		size    = 2 << 10
	)
	k := startKeyflux(t, nil, "--max-queued-bytes", strconv.Itoa(budget),
		"--queue-bytes", strconv.Itoa(budget/2), "--write-timeout", "1m")
	for range stalled {
		openStalledRaw(t, k, "/streams/channels/crowd")
	}
	reader := k.open("/streams/channels/crowd")
	reader.Expect("connected")
	payload := strings.Repeat("x", size)
	sent := 0
	peak := 0.0
	slow := `keyflux_slow_consumers_total{policy="disconnect"}`
	for ; sent < most && labelled(t, k, slow) < stalled; sent += 100 {
		for range 100 {
			k.do("PUBLISH", "crowd", payload)
		}
		peak = max(peak, metric(t, k, "keyflux_queued_bytes"))
		if peak > budget {
			t.Fatalf("after %d events: %v bytes queued, past the %d budget", sent, peak, budget)
		}
	}
	if n := labelled(t, k, slow); n != stalled {
		t.Fatalf("after %d events: %v stalled clients cut off, want %d", sent, n, stalled)
	}
	for i := range sent {
		if ev := reader.Next(); ev.Type != "message" {
			t.Fatalf("reader: event %d is %q", i, ev.Type)
		}
	}
	t.Logf("%d events; peak %v bytes queued (sampled) of %d", sent, peak, budget)
}
