package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// asMain, set in the environment, makes the test binary run sseload's
// main with its arguments: tests start the floor server as a process of
// its own that way, so its CPU is its own /proc/<pid>.
const asMain = "SSELOAD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}
