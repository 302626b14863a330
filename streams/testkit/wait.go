package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test after 10 s. It is
// for states that have no event to await: Redis's own counters, a count of
// clients or goroutines.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with no event to await
	}
}
