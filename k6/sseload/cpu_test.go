package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestParseProcStat reads utime and stime from stat lines whose command
// name holds spaces and parentheses, which a plain split would miscount.
func TestParseProcStat(t *testing.T) {
	// Fields 3 to 17 of a real line: state ppid pgrp session tty tpgid
	// flags minflt cminflt majflt cmajflt utime stime cutime cstime.
	const rest = " S 1 1234 1234 0 -1 4194560 5000 0 3 0 1234 567 8 9 20 0 12 0 100 0"
	for _, name := range []string{"keyflux", "a b", "x) (y", ")"} {
		got, err := parseProcStat("1234 (" + name + ")" + rest)
		if want := (1234 + 567) * 10 * time.Millisecond; err != nil || got != want {
			t.Errorf("name %q: %v, %v; want %v", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "1234 keyflux S 1", "1234 (kf) S 1 2 3", "1234 (kf)" + strings.Replace(rest, "1234 567", "x 567", 1)} {
		if d, err := parseProcStat(bad); err == nil {
			t.Errorf("%q: %v, want an error", bad, d)
		}
	}
}

// TestReadProcCPU reads this test's own CPU time, which must grow as it
// spins, and fails for a process that does not exist.
func TestReadProcCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	before, err := readProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var after time.Duration
	for after <= before {
		for i := 0; i < 1e6; i++ {
			_ = math.Sqrt(float64(i))
		}
		if after, err = readProcCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readProcCPU(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// TestParseInfoCPU adds the two fields of Redis 7's INFO cpu and ignores
// the others; either missing is an error.
func TestParseInfoCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.500001\r\nused_cpu_sys_children:9.000000\r\n" +
		"used_cpu_user_children:9.000000\r\nused_cpu_sys_main_thread:1.000000\r\nused_cpu_user_main_thread:0.400000\r\n"
	got, err := parseInfoCPU(info)
	if want := 1750001 * time.Microsecond; err != nil || got != want {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"# CPU\r\nused_cpu_sys:1.0\r\n", "used_cpu_sys:x\r\nused_cpu_user:1\r\n", ""} {
		if d, err := parseInfoCPU(bad); err == nil {
			t.Errorf("%q: %v, want an error", bad, d)
		}
	}
}

// TestEventKey takes the key from Keyflux's data directly, and from any
// other JSON by decoding it; data without a key is refused.
func TestEventKey(t *testing.T) {
	for _, tc := range []struct {
		data, key string
		ok        bool
	}{
		{`{"key":"load:12","event":"set","db":0,"ts":1733237000000}`, "load:12", true},
		{`{"key":"load:12"}`, "load:12", true},
		{`{"key":"a\"b","event":"set"}`, `a"b`, true},
		{`{"key":"a\u0041","event":"set"}`, "aA", true},
		{`{"event":"set","key":"load:3"}`, "load:3", true},
		{`{"key":"load:1"x}`, "", false},
		{`{"key":"load:1",`, "", false},
		{`{"event":"set"}`, "", false},
		{`not json`, "", false},
	} {
		key, ok := eventKey(tc.data)
		if key != tc.key || ok != tc.ok {
			t.Errorf("%s: %q %v, want %q %v", tc.data, key, ok, tc.key, tc.ok)
		}
	}
}

// TestNetPerUnit subtracts the idle rate, scaled to the window.
func TestNetPerUnit(t *testing.T) {
	// 3 s of CPU over a 30 s window; idle 0.1 s per 10 s, so 0.3 s of it
	// is idle: 2.7 s over 1,000 units is 2,700 µs each.
	if got := netPerUnit(3*time.Second, 100*time.Millisecond, 10*time.Second, 30*time.Second, 1000); math.Abs(got-2700) > 1e-6 {
		t.Errorf("net %v, want 2700", got)
	}
	if got := netPerUnit(3*time.Second, time.Second, 0, 30*time.Second, 1000); got != 3000 {
		t.Errorf("without a baseline %v, want the gross 3000", got)
	}
	if got := perUnit(time.Second, 0); got != 0 {
		t.Errorf("no units: %v, want 0", got)
	}
}

// TestFanoutResultJSON writes a result the way journal-overhead.sh reads
// it: one field a line, numbers bare, a figure that could not be read null
// with its reason beside it.
func TestFanoutResultJSON(t *testing.T) {
	r := fanoutResult{Mode: modeFanout, Sent: 1000, Delivered: 2_000_000, WindowSeconds: 10}
	cost := cpuCost{server: 4 * time.Second, redisErr: os.ErrDeadlineExceeded}
	r.setCPU(cost, "/proc/1/stat", 10*time.Second)
	r.setBaseline(cpuCost{server: 100 * time.Millisecond}, 10*time.Second, cost, 10*time.Second)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`  "keyflux_cpu_us_per_delivery": 2,`,
		`  "keyflux_cpu_us_per_delivery_net": 1.95,`,
		`  "keyflux_cpu_percent": 40,`,
		`  "redis_cpu_us_per_event": null,`,
		`  "redis_cpu_error": "i/o timeout",`,
		`  "keyflux_idle_cpu_percent": 1,`,
		`  "redis_cpu_us_per_event_net": null,`,
	} {
		if !bytes.Contains(raw, []byte("\n"+line+"\n")) {
			t.Errorf("no line %q in\n%s", line, raw)
		}
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.costLine(), "= 2.000 µs per delivery; Redis CPU unavailable: i/o timeout") {
		t.Errorf("cost line %q", r.costLine())
	}
}

// TestParseMachineBusy adds user, nice, system, irq and softirq of the
// "cpu" line, leaving out idle, iowait, steal and the guest counters.
func TestParseMachineBusy(t *testing.T) {
	stat := "cpu  100 2 30 5000 40 5 6 70 8 9\ncpu0 50 1 15 2500 20 2 3 35 4 4\nintr 1 2 3\n"
	got, err := parseMachineBusy(stat)
	if want := (100 + 2 + 30 + 5 + 6) * 10 * time.Millisecond; err != nil || got != want {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7\n"} {
		if d, err := parseMachineBusy(bad); err == nil {
			t.Errorf("%q: %v, want an error", bad, d)
		}
	}
}
