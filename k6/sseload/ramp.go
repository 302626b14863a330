package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tmaxmax/go-sse"
)

// rampResult is what opening the streams produced.
type rampResult struct {
	streams []*stream // the ones that connected, in no particular order
	errs    []error   // why the others did not
	took    time.Duration
}

// maxOpening is how many streams openAll has between the dial and the
// "connected" event at once. Keyflux lets one client address have only a
// few connections that are not yet streams (max(8, 1/8 of its request
// places); 23 under a 20,000 open-file limit) and answers more with 503:
// on a loaded machine, where each handshake takes longer, a paced ramp
// otherwise piles up past that and loses streams to refusals.
const maxOpening = 8

// openAll opens n streams at no more than rate a second, and no more than
// maxOpening at once. A server's accept queue is finite (somaxconn), and a
// burst of thousands of SYNs would measure the kernel's backlog, not
// Keyflux: pacing keeps every stream's handshake an ordinary one.
// events(i) gives stream i its event handler (nil for none). Progress goes
// to progress once a second.
func openAll(ctx context.Context, cfg config, events func(i int) func(sse.Event), progress io.Writer) rampResult {
	var (
		mu  sync.Mutex
		res rampResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	report := func() {
		mu.Lock()
		ok, failed := len(res.streams), len(res.errs)
		mu.Unlock()
		fmt.Fprintf(progress, "  %5.1fs  %d connected, %d failed, of %d\n", time.Since(start).Seconds(), ok, failed, cfg.Clients)
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	opening := make(chan struct{}, maxOpening)
	for i := 0; i < cfg.Clients; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !waitUntil(ctx, due, tick.C, report) || !acquire(ctx, opening, tick.C, report) {
			break
		}
		var onEvent func(sse.Event)
		if events != nil {
			onEvent = events(i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := openStream(ctx, cfg.target, cfg.ConnectTimeout, onEvent)
			<-opening
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.errs = append(res.errs, err)
			} else {
				res.streams = append(res.streams, s)
			}
		}()
	}
	wg.Wait()
	res.took = time.Since(start)
	report()
	return res
}

// waitUntil sleeps until due, calling report on every tick meanwhile; it
// returns false if ctx ends first.
func waitUntil(ctx context.Context, due time.Time, tick <-chan time.Time, report func()) bool {
	for {
		d := time.Until(due)
		if d <= 0 {
			select {
			case <-ctx.Done():
				return false
			case <-tick:
				report()
			default:
			}
			return true
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-tick:
			timer.Stop()
			report()
		case <-timer.C:
		}
	}
}

// acquire takes a place in sem, calling report on every tick meanwhile; it
// returns false if ctx ends first.
func acquire(ctx context.Context, sem chan<- struct{}, tick <-chan time.Time, report func()) bool {
	for {
		select {
		case sem <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		case <-tick:
			report()
		}
	}
}
