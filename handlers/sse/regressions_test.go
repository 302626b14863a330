package sse

import (
	"testing"
	"time"
)

// Regression tests of bugs found by testing the sink on its own; each
// failed (one crashed the test binary) before its fix.

// Serve armed the heartbeat (time.AfterFunc) before it stored the timer in
// c.timer, so with a heartbeat shorter than that gap beat runs first and
// its flush goroutine calls c.timer.Reset on a nil timer: a data race, and
// a nil pointer panic that takes the process down. --heartbeat accepts any
// positive duration (app/config.go).
func TestTinyHeartbeatUsesTheTimerBeforeItIsSet(t *testing.T) {
	for range 200 {
		k := newSink(t, SinkOptions{Heartbeat: time.Nanosecond})
		p := open(t, k, SlowDisconnect, nil, false)
		if b := p.block(); b != ": ping\n\n" {
			t.Fatalf("got %q, want a ping", b)
		}
		k.Close()
	}
}
