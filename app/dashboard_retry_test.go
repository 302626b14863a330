package main

import "testing"

// The dashboard spreads its own reconnects after errors: each wait is drawn
// from [d, 2 x d) of the backed-off delay d, so pages cut off together by a
// restart do not all come back at once.
func TestDashboardSpreadsItsReconnects(t *testing.T) {
	k := startKeyflux(t, nil)
	p := openDashboard(t, k, 1200, 800)
	eval[bool](p, `(import("/stream.js").then((m) => {
		window.delays = Array.from({ length: 50 }, () => m.retryDelay(1000, 1));
	}), true)`)
	p.waitFor(`Array.isArray(window.delays)`, "the delays to be drawn")
	delays := eval[[]float64](p, `window.delays`)
	seen := map[float64]bool{}
	for _, d := range delays {
		if d < 2000 || d >= 4000 {
			t.Fatalf("reconnect delay %v after the second error with a 1000 ms retry, want [2000, 4000)", d)
		}
		seen[d] = true
	}
	// 50 draws from 2,000 values: fewer than 35 distinct ones means no jitter.
	if len(seen) < 35 {
		t.Fatalf("%d distinct delays of 50: %v", len(seen), delays)
	}
}
