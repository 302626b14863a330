package main

import (
	"context"
	"sync"
	"time"
)

// paced runs do(i) for i from 0 to n-1, the i-th at interval×i after the
// start, each on a goroutine of its own, at most inflight at once, until
// ctx ends; about once a second it calls progress with the time since the
// start. It waits for every do and returns how long it all took.
func paced(ctx context.Context, n int, interval time.Duration, inflight int, do func(i int), progress func(elapsed time.Duration)) time.Duration {
	start := time.Now()
	next := start.Add(time.Second)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inflight)
	for i := 0; i < n; i++ {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			do(i)
		}()
		if now := time.Now(); now.After(next) {
			next = now.Add(time.Second)
			progress(now.Sub(start))
		}
	}
	wg.Wait()
	return time.Since(start)
}
