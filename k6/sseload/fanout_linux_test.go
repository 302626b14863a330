package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFanoutCostsAndJSON runs fanout with -pid, -baseline and -json
// against a real Keyflux: the JSON must agree with the text report, count
// every delivery, and carry positive CPU figures for both the server
// (from /proc/<pid>/stat) and its Redis (INFO cpu).
func TestFanoutCostsAndJSON(t *testing.T) {
	k := startKeyflux(t)
	path := filepath.Join(t.TempDir(), "fanout.json")
	cfg := fanoutConfig(t, k, "-clients", "20", "-events", "2000", "-eps", "2000",
		"-pid", strconv.Itoa(k.pid), "-baseline", "300ms", "-json", path)
	var out, log bytes.Buffer
	if err := runFanout(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("runFanout: %v\n%s\n%s", err, out.String(), log.String())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	for name, want := range map[string]any{
		"ok": true, "connected": 20.0, "events_sent": 2000.0, "deliveries": 40000.0, "lost": 0.0,
		"delivery_ratio": 1.0, "latency_samples": 40000.0, "keyflux_cpu_source": "/proc/" + strconv.Itoa(k.pid) + "/stat",
	} {
		if r[name] != want {
			t.Errorf("%s = %v, want %v\n%s", name, r[name], want, raw)
		}
	}
	for _, name := range []string{"keyflux_cpu_us_per_delivery", "redis_cpu_us_per_event", "latency_p50_us", "latency_p99_us", "window_seconds", "baseline_seconds"} {
		if v, ok := r[name].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v, want a positive number\n%s", name, r[name], raw)
		}
	}
	for _, name := range []string{"keyflux_cpu_us_per_delivery_net", "redis_cpu_us_per_event_net", "keyflux_idle_cpu_percent", "redis_idle_cpu_percent"} {
		if _, ok := r[name].(float64); !ok {
			t.Errorf("%s = %v, want a number\n%s", name, r[name], raw)
		}
	}
	if !strings.Contains(out.String(), "CPU over ") || !strings.Contains(out.String(), "idle CPU over ") {
		t.Errorf("text report lacks the CPU lines:\n%s", out.String())
	}
}

// TestFanoutPIDMustExist refuses a -pid whose /proc entry cannot be read
// before opening any stream.
func TestFanoutPIDMustExist(t *testing.T) {
	k := keyfluxProc{base: "http://127.0.0.1:1", redis: "127.0.0.1:1"}
	cfg := fanoutConfig(t, k, "-pid", strconv.Itoa(1<<30))
	var out, log bytes.Buffer
	err := runFanout(context.Background(), cfg, &out, &log)
	if err == nil || !strings.Contains(err.Error(), "-pid 1073741824") {
		t.Fatalf("runFanout = %v, want a -pid error\n%s", err, out.String())
	}
}
