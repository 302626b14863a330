package sse

import (
	"cmp"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Go keeps freed heap for minutes: 2,000 stalled clients once left 760 MB
// resident two minutes after they were gone. So once the queued bytes have
// fallen by returnAbove from their high-water mark (and to under half of
// it), the heap is handed back to the OS returnAfter later, at most once
// per returnEvery (each is a full collection).
const (
	returnAbove = 16 << 20
	returnAfter = time.Second
	returnEvery = 10 * time.Second
)

// budget counts the bytes of frames all clients hold, queued or being
// written, against SinkOptions.MaxQueuedBytes. A frame is shared by its
// clients but each holds its own reference, so the sum of their sizes
// bounds the frames' memory (and the slices that hold them grow with it).
type budget struct {
	total *atomic.Int64 // in the sink's Metrics, for the gauge
	max   int64
	high  atomic.Int64 // highest total since memory was last returned

	mu        sync.Mutex
	returning *time.Timer // pending hand-back to the OS
	returned  time.Time   // when the last one ran
	running   sync.WaitGroup
	closed    bool
	shedding  sync.Mutex // one shed at a time
}

// take reserves n bytes; false, reserving nothing, if they do not fit.
func (b *budget) take(n int) bool {
	for {
		cur := b.total.Load()
		next := cur + int64(n)
		if next > b.max {
			return false
		}
		if b.total.CompareAndSwap(cur, next) {
			if next > b.high.Load() {
				b.high.Store(next) // approximate under races: it only decides when to return memory
			}
			return true
		}
	}
}

// force adds n bytes whatever the budget: a response head, a reset frame,
// small and each replacing far more.
func (b *budget) force(n int) { b.total.Add(int64(n)) }

// give releases n bytes, and returns memory to the OS after a large release.
func (b *budget) give(n int) {
	if n == 0 {
		return
	}
	cur := b.total.Add(-int64(n))
	if high := b.high.Load(); high-cur >= returnAbove && cur < high/2 {
		b.returnMemory()
	}
}

// returnMemory schedules one debug.FreeOSMemory.
func (b *budget) returnMemory() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.returning != nil {
		return
	}
	wait := max(returnAfter, returnEvery-time.Since(b.returned))
	b.running.Add(1)
	b.returning = time.AfterFunc(wait, func() {
		defer b.running.Done()
		b.high.Store(b.total.Load())
		debug.FreeOSMemory()
		b.mu.Lock()
		b.returning = nil
		b.returned = time.Now()
		b.mu.Unlock()
	})
}

// close cancels a pending return and waits for one that runs.
func (b *budget) close() {
	b.mu.Lock()
	b.closed = true
	if b.returning != nil && b.returning.Stop() {
		b.running.Done()
	}
	b.mu.Unlock()
	b.running.Wait()
}

// shed applies the slow policy to the clients furthest behind (queued plus
// being written), largest first, until n more bytes fit with an eighth of
// the budget to spare, so that shedding happens now and then, not at every
// frame. It runs under a topic lock, like Send: clients only queue.
func (k *Sink) shed(n int) {
	b := &k.budget
	b.shedding.Lock()
	defer b.shedding.Unlock()
	if b.total.Load()+int64(n) <= b.max {
		return // another shed made room meanwhile
	}
	k.mu.Lock()
	all := make([]*client, 0, len(k.clients))
	for c := range k.clients {
		all = append(all, c)
	}
	k.mu.Unlock()
	type lag struct {
		c *client
		n int
	}
	lags := make([]lag, 0, len(all))
	for _, c := range all {
		if n := c.behind(); n > 0 {
			lags = append(lags, lag{c, n})
		}
	}
	slices.SortFunc(lags, func(x, y lag) int { return cmp.Compare(y.n, x.n) })
	target := b.max - b.max/8 - int64(n)
	for _, l := range lags {
		if b.total.Load() <= target {
			return
		}
		l.c.shed()
	}
}
