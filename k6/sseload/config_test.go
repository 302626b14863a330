package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestModeDefaults checks the defaults the two attack modes take when
// -url and -stalled are not given, and that a given flag wins.
func TestModeDefaults(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		url           string
		stalled, flow int
	}{
		{[]string{"-mode", "amplification", "-redis", "127.0.0.1:6379"}, modeURL[modeAmplification], 0, 2},
		{[]string{"-mode", "stalled-crowd", "-redis", "127.0.0.1:6379"}, modeURL[modeStalledCrowd], 2000, 2000},
		{[]string{"-mode", "stalled-crowd", "-redis", "127.0.0.1:6379", "-stalled", "5",
			"-url", "http://127.0.0.1:1/streams/keyspace?pattern=c:*"}, "http://127.0.0.1:1/streams/keyspace?pattern=c:*", 5, 5},
	} {
		var errs bytes.Buffer
		c, err := parseConfig(tc.args, &errs)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if c.URL != tc.url || c.Stalled != tc.stalled || c.streams() != tc.flow {
			t.Errorf("%q: url %q stalled %d streams %d, want %q %d %d", tc.args, c.URL, c.Stalled, c.streams(), tc.url, tc.stalled, tc.flow)
		}
	}
}

// TestAttackModeFlagErrors checks that each mode refuses what it cannot run.
func TestAttackModeFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "amplification"}, "needs -redis"},
		{[]string{"-mode", "amplification", "-redis", "127.0.0.1:6379", "-url", "http://127.0.0.1:1/streams/keyspace?pattern=a:*"}, "must hold {n}"},
		{[]string{"-mode", "amplification", "-redis", "127.0.0.1:6379", "-parallel", "0"}, "-parallel 0"},
		{[]string{"-mode", "amplification", "-redis", "10.1.2.3:6379"}, "not a loopback address"},
		{[]string{"-mode", "stalled-crowd", "-redis", "127.0.0.1:6379", "-url", "http://127.0.0.1:1/streams/keys?key=a"}, "must be /streams/channels/<channel>"},
		{[]string{"-mode", "stalled-crowd", "-redis", "127.0.0.1:6379", "-url", "http://127.0.0.1:1/streams/keyspace?pattern=a*b"}, "literal prefix"},
		{[]string{"-mode", "stalled-crowd", "-redis", "127.0.0.1:6379", "-size", "0"}, "-size 0"},
	} {
		var errs bytes.Buffer
		_, err := parseConfig(tc.args, &errs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

// TestAmplificationPathCounter checks that {n} is replaced in the path,
// where url.Parse escapes it, as well as in the query.
func TestAmplificationPathCounter(t *testing.T) {
	var errs bytes.Buffer
	c, err := parseConfig([]string{"-mode", "amplification", "-redis", "127.0.0.1:6379",
		"-url", "http://127.0.0.1:1/streams/channels/amp{n}?encoding=text&x={n}"}, &errs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := counted(c.target.requestURI, 42), "/streams/channels/amp42?encoding=text&x=42"; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
}

// TestParseBench reads redis-benchmark 7.0's output, complete and
// stopped before its summary.
func TestParseBench(t *testing.T) {
	progress := "\r                \rSET: rps=162662.7 (overall: 162662.7) avg_msec=0.198 (overall: 0.198)\r" +
		"\rSET: rps=40486.1 (overall: 122908.4) avg_msec=0.479 (overall: 0.227)\r  "
	summary := `====== SET ======
Summary:
  throughput summary: 131926.12 requests per second
  latency summary (msec):
          avg       min       p50       p95       p99       max
        0.254     0.064     0.199     0.303     0.927    15.855
`
	var b benchResult
	b.parse(progress + summary)
	if b.rps != 131926.12 || b.avg != 0.254 || b.p50 != 0.199 || b.p99 != 0.927 || b.max != 15.855 {
		t.Errorf("complete: %+v", b)
	}
	b = benchResult{}
	b.parse(progress)
	if b.rps != 122908.4 || b.avg != 0.227 || b.p99 != 0 {
		t.Errorf("stopped: %+v", b)
	}
	b = benchResult{}
	b.parse("Could not connect to Redis at 127.0.0.1:1: Connection refused\n")
	if b.rps != 0 {
		t.Errorf("error output: %+v", b)
	}
}
