package sse

import (
	"testing"

	"go.uber.org/goleak"
)

// Every sink, hub and connection a test opens must be gone when it ends:
// flush goroutines, the hang-up watcher and heartbeats included.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
