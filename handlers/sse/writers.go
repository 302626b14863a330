package sse

import (
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writers are the sink's fixed set of writer goroutines, one per two
// cores. A client with frames to send is put on its writer's ready list;
// the writer sends each ready client's queue with one non-blocking write.
// Only a client whose socket is full (or that must be closed) gets a
// goroutine of its own, the blocking flush, with a write deadline. So
// delivering an event to a client that keeps up costs one system call and
// no goroutine start, no timer and no deadline.
//
// With coalesce, a client is written at most once per coalesce: a client
// readied sooner after its last write is held until then, its frames
// piling up for one write. A client that was quiet is written at once, so
// the window costs latency only at rates where it saves writes.
//
// Why half the cores: most of a write's cost is the kernel's (TCP send,
// and the softirqs that follow it), and that work, the hub and the Redis
// reads need cores too. Measured at 5,000 clients x 20 events/s on 2 cores,
// one writer spends 12% less CPU per delivery than two, at the same
// latency (docs/performance.md).
type writers struct {
	all     []*writer
	next    uint32 // round robin over all, for new clients (under the sink's mu)
	wg      sync.WaitGroup
	closing sync.Once
}

// writer is one of the writers.
type writer struct {
	coalesce time.Duration
	writes   prometheus.Counter

	mu    sync.Mutex
	ready []*client
	wake  chan struct{} // one slot: a send that finds it full is dropped
	done  chan struct{}

	raw *rawWriter

	// held are the clients written less than coalesce ago, each waiting
	// for its turn, and next is the first turn among them; only the
	// writer's goroutine touches them. The held stay flushing meanwhile,
	// so their frames pile up in the queue for one write.
	held []*client
	next int64
}

func newWriters(coalesce time.Duration, writes prometheus.Counter) *writers {
	ws := &writers{}
	for range max(1, runtime.GOMAXPROCS(0)/2) {
		w := &writer{coalesce: coalesce, writes: writes, wake: make(chan struct{}, 1), done: make(chan struct{}), next: math.MaxInt64,
			raw: newRawWriter()}
		ws.all = append(ws.all, w)
		ws.wg.Add(1)
		go w.run(&ws.wg)
	}
	return ws
}

// pick returns the writer of a new client. Called with the sink's mu held.
func (ws *writers) pick() *writer {
	ws.next++
	return ws.all[ws.next%uint32(len(ws.all))]
}

// close stops the writers once their ready lists are empty. It is safe
// to call more than once.
func (ws *writers) close() {
	ws.closing.Do(func() {
		for _, w := range ws.all {
			close(w.done)
		}
	})
	ws.wg.Wait()
}

// push puts c on w's ready list. Called with c.mu held, c.flushing just set.
func (w *writer) push(c *client) {
	w.mu.Lock()
	w.ready = append(w.ready, c)
	first := len(w.ready) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *writer) run(wg *sync.WaitGroup) {
	defer wg.Done()
	var batch []*client
	var turn *time.Timer
	closing := false
	for {
		w.mu.Lock()
		batch, w.ready = w.ready, batch[:0]
		w.mu.Unlock()
		if len(batch) == 0 {
			if len(w.held) == 0 {
				select {
				case <-w.wake:
				case <-w.done:
					closing = true
					w.mu.Lock()
					left := len(w.ready)
					w.mu.Unlock()
					if left == 0 {
						return
					}
				}
				continue
			}
			if d := time.Duration(w.next - nanotime()); d > 0 && !closing {
				if turn == nil {
					turn = time.NewTimer(d)
				} else {
					turn.Reset(d)
				}
				select {
				case <-turn.C:
				case <-w.wake:
				case <-w.done:
					closing = true
				}
				continue
			}
		}
		now := nanotime()
		if len(w.held) > 0 && (closing || now >= w.next) {
			// Someone's turn came: the held go through again, the ones
			// whose turn has not come setting the next one.
			held, n := w.held, len(w.held)
			w.held, w.next = held[:0], math.MaxInt64
			w.write(held, now, closing)
			clear(held[len(w.held):n]) // no stale pointers to clients gone
		}
		w.write(batch, now, closing)
		clear(batch)
	}
}

// write sends each client of cs whose turn has come (all of them when
// closing) and holds the others.
func (w *writer) write(cs []*client, now int64, closing bool) {
	wrote := 0
	hold := w.coalesce > 0 && !closing
	for _, c := range cs {
		if hold {
			if last := c.lastWrite.Load(); now-last < int64(w.coalesce) {
				w.held = append(w.held, c)
				w.next = min(w.next, last+int64(w.coalesce))
				continue
			}
		}
		if c.writeReady(w, now) {
			wrote++
		}
	}
	if wrote > 0 { // one shared counter update a batch, not a client
		w.writes.Add(float64(wrote))
	}
}

// clockStart is where nanotime counts from: the monotonic clock, as an
// int64 that an atomic can hold.
var clockStart = time.Now()

func nanotime() int64 { return int64(time.Since(clockStart)) }
