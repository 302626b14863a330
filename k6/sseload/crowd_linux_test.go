package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// crowdConfig is a small stalled-crowd run against k.
func crowdConfig(t *testing.T, k keyfluxProc, args ...string) config {
	t.Helper()
	var errs bytes.Buffer
	args = append([]string{"-mode", "stalled-crowd", "-redis", k.redis, "-timeout", "1m",
		"-stalled", "20", "-eps", "500", "-duration", "2s", "-after", "1s", "-sample", "250ms",
		"-url", k.base + "/streams/channels/crowd"}, args...)
	cfg, err := parseConfig(args, &errs)
	if err != nil {
		t.Fatalf("flags %q: %v\n%s", args, err, errs.String())
	}
	return cfg
}

// TestStalledCrowdFollowsRSS runs a small crowd: every stream must open,
// every event must be written, the server must be seen holding the crowd
// while the writer runs, and the report must give the start, the peak and
// the end with a reading at least every -sample.
func TestStalledCrowdFollowsRSS(t *testing.T) {
	k := startKeyflux(t)
	cfg := crowdConfig(t, k)
	var out, log bytes.Buffer
	if err := runStalledCrowd(context.Background(), cfg, &out, &log); err != nil {
		t.Fatalf("runStalledCrowd: %v\n%s\n%s", err, out.String(), log.String())
	}
	got := out.String()
	for _, want := range []string{
		"20 of 20 stalled streams open",
		"refused 0, failed 0",
		"wrote 1000 events of 200 bytes",
		"0 write errors",
		"RSS: start ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if !regexp.MustCompile(`writing +RSS +[0-9.]+ MiB  clients +20 `).MatchString(got) {
		t.Errorf("no reading shows the server holding the 20 streams while writing:\n%s", got)
	}
	// 3 s of run at 4 readings a second, plus the start, the last before
	// the crowd leaves and the end; the ticker may skip a beat under load.
	if n := len(regexp.MustCompile(`(?m)^ +[0-9.]+s  (start|opening|writing|gone) `).FindAllString(got, -1)); n < 9 {
		t.Errorf("%d RSS readings, want at least 9:\n%s", n, got)
	}
}

// TestStalledCrowdMaxRSS checks the verdict: a -max-rss no server can
// meet fails the run and says why.
func TestStalledCrowdMaxRSS(t *testing.T) {
	k := startKeyflux(t)
	cfg := crowdConfig(t, k, "-stalled", "2", "-duration", "500ms", "-after", "0s", "-max-rss", "1")
	var out, log bytes.Buffer
	err := runStalledCrowd(context.Background(), cfg, &out, &log)
	if !errors.Is(err, errFailed) {
		t.Fatalf("runStalledCrowd = %v, want errFailed\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "FAILED -max-rss 1 MiB: peak ") {
		t.Errorf("output lacks the -max-rss verdict:\n%s", out.String())
	}
}
