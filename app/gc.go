package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is Keyflux's GOGC when the environment sets none. Its heap is
// mostly the long-lived state of open streams, and an event allocates the
// same few objects whatever the number of clients it reaches, so a target
// tighter than Go's 100 keeps RSS close to what the streams hold, for
// little collection work (docs/performance.md).
const gcPercent = 25

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
