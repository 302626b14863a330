package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startFloor runs the floor server as a child process (this test binary
// as sseload), with args, and returns its base URL and pid.
func startFloor(t *testing.T, args ...string) (base string, pid int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-mode", "floor-server", "-listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), asMain+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("floor-server said nothing: %v", err)
	}
	_, base, ok := strings.Cut(strings.TrimSpace(line), "url=")
	if !ok {
		t.Fatalf("floor-server said %q, want its url", line)
	}
	return base, cmd.Process.Pid
}

// benchJSON runs -mode bench with args and returns its JSON result.
func benchJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.json")
	args = append([]string{"-mode", "bench", "-settle", "100ms", "-json", path}, args...)
	var out, log bytes.Buffer
	if code := run(args, &out, &log); code != exitOK {
		t.Fatalf("sseload %v: exit %d\n%s\n%s", args, code, out.String(), log.String())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	return r
}

// checkRun asserts what every complete run must show: every delivery
// made, each timed, and a server that spent CPU and memory on them.
func checkRun(t *testing.T, r map[string]any, clients, events int, wantRedis bool) {
	t.Helper()
	raw, _ := json.MarshalIndent(r, "", " ")
	deliveries := float64(clients * events)
	for name, want := range map[string]any{
		"ok": true, "connected": float64(clients), "events_sent": float64(events), "deliveries": deliveries,
		"deliveries_expected": deliveries, "latency_samples": deliveries, "delivery_ratio": 1.0,
		"lost": 0.0, "duplicates": 0.0, "foreign": 0.0, "streams_dropped": 0.0,
	} {
		if r[name] != want {
			t.Errorf("%s = %v, want %v\n%s", name, r[name], want, raw)
		}
	}
	positive := []string{"server_cpu_us_per_delivery", "server_cpu_seconds", "deliveries_per_second",
		"latency_p50_us", "latency_p99_us", "window_seconds", "rss_after_kib"}
	if wantRedis {
		positive = append(positive, "redis_cpu_us_per_event")
	}
	for _, name := range positive {
		if v, ok := r[name].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v, want a positive number\n%s", name, r[name], raw)
		}
	}
	if _, ok := r["rss_per_stream_kib"].(float64); !ok {
		t.Errorf("rss_per_stream_kib = %v, want a number\n%s", r["rss_per_stream_kib"], raw)
	}
	// A delivery cannot cost the server less than a tenth of a
	// microsecond: a figure below that means the wrong process was read.
	if v, _ := r["server_cpu_us_per_delivery"].(float64); v < 0.1 || v > 1000 {
		t.Errorf("server_cpu_us_per_delivery = %v, want 0.1 to 1000\n%s", v, raw)
	}
}

// TestBenchFloor measures the floor server like any other: HTTP
// publishes, every frame delivered to every stream, its CPU from its
// own /proc entry.
func TestBenchFloor(t *testing.T) {
	base, pid := startFloor(t)
	r := benchJSON(t, "-url", base+"/stream", "-publish", "http", "-publish-url", base+"/pub",
		"-clients", "50", "-events", "600", "-eps", "600", "-pids", strconv.Itoa(pid), "-server", "floor")
	checkRun(t, r, 50, 600, false)
	if r["server"] != "floor" || r["run"] != "50x600" {
		t.Errorf("server, run = %v, %v; want floor, 50x600", r["server"], r["run"])
	}
}

// TestFloorBatch: with -batch 2 the floor writes events two at a time, in
// one write; a batch still short after -batch-idle goes as it is.
func TestFloorBatch(t *testing.T) {
	base, _ := startFloor(t, "-batch", "2", "-batch-idle", "1h")
	conn, r := openFloorStream(t, base)
	publishFloor(t, base, "one")
	// Alone, the first event waits for its companion (for an hour).
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := r.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v: the first event of a batch went alone", n, err)
	}
	publishFloor(t, base, "two")
	want := "data: one\n\ndata: two\n\n"
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}

	base, _ = startFloor(t, "-batch", "3", "-batch-idle", "10ms")
	conn, r = openFloorStream(t, base)
	publishFloor(t, base, "lone")
	want = "data: lone\n\n"
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got = make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want the short batch %q", got, err, want)
	}
}

// openFloorStream opens a raw stream to the floor and reads its head.
func openFloorStream(t *testing.T, base string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /stream HTTP/1.1\r\nHost: floor\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream head: %v", err)
		}
		if line == "\r\n" {
			return conn, r
		}
	}
}

// publishFloor POSTs body to the floor's /pub.
func publishFloor(t *testing.T, base, body string) {
	t.Helper()
	resp, err := http.Post(base+"/pub", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /pub: %s", resp.Status)
	}
}

// TestBenchKeyflux runs every publisher kind against a real Keyflux and
// its real redis-server.
func TestBenchKeyflux(t *testing.T) {
	k := startKeyflux(t, "--publish-token", "tok")
	pid := strconv.Itoa(k.pid)
	for _, tc := range []struct {
		publish, path string
		redis         bool
	}{
		{publishRedisPublish, "/streams/channels/bench", true},
		{publishRedisSet, "/streams/keyspace?pattern=bench:*&events=set", true},
		{publishHTTP, "/streams/channels/bench", false},
	} {
		t.Run(tc.publish, func(t *testing.T) {
			r := benchJSON(t, "-url", k.base+tc.path, "-publish", tc.publish, "-redis", k.redis,
				"-publish-url", k.base+"/api/channels/bench", "-publish-token", "tok",
				"-clients", "40", "-events", "500", "-eps", "500", "-pids", pid, "-server", "keyflux")
			checkRun(t, r, 40, 500, tc.redis)
		})
	}
}

// TestBenchIdleAndFailures: -events 0 measures memory only; a publish
// the server refuses makes the run fail (exit 1), not hang.
func TestBenchIdleAndFailures(t *testing.T) {
	base, pid := startFloor(t)
	r := benchJSON(t, "-url", base+"/s", "-publish", "http", "-publish-url", base+"/pub",
		"-clients", "30", "-events", "0", "-pids", strconv.Itoa(pid))
	if r["run"] != "30 idle" || r["deliveries"] != 0.0 || r["connected"] != 30.0 {
		t.Errorf("idle run: run %v, deliveries %v, connected %v", r["run"], r["deliveries"], r["connected"])
	}
	if v, ok := r["rss_per_stream_kib"].(float64); !ok || v < 0 {
		t.Errorf("rss_per_stream_kib = %v", r["rss_per_stream_kib"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, err := parseBenchConfig([]string{"-mode", "bench", "-url", base + "/s", "-publish", "http",
		"-publish-url", "http://127.0.0.1:1/pub", "-clients", "3", "-events", "10", "-warmup", "1s", "-settle", "0s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runCompare(ctx, cfg, &out, &bytes.Buffer{}); err != errFailed {
		t.Fatalf("runCompare with a dead publish URL = %v, want errFailed\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "warm-up:") {
		t.Errorf("no warm-up failure reported:\n%s", out.String())
	}
}
