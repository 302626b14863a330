package redis

import (
	"context"
	"sync"

	"github.com/keyflux/keyflux/streams"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/reactivex/rxgo/v2"
)

// pump hands items from a Redis connection's reader goroutine to a pipeline.
// rueidis runs message callbacks on the reader, so a blocking callback would
// stall every reply on that connection: the pump never blocks. When the
// pipeline falls behind it drops messages and sends a Gap as soon as there is
// room again, so subscribers learn they must resynchronise.
type pump struct {
	mu      sync.Mutex
	ch      chan rxgo.Item
	lost    bool
	closed  bool
	dropped prometheus.Counter
}

// newPump makes a pump holding size items (4096 when size is 0).
func newPump(size int, dropped prometheus.Counter) *pump {
	if size <= 0 {
		size = 4096
	}
	return &pump{ch: make(chan rxgo.Item, size), dropped: dropped}
}

// send hands ev to a pipeline's channel from a goroutine of its own, which
// may wait; it reports false once ctx has ended.
func send(ctx context.Context, out chan<- rxgo.Item, ev streams.Event) bool {
	select {
	case out <- rxgo.Of(ev):
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *pump) offer(ev streams.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.lost {
		select {
		case p.ch <- rxgo.Of(streams.Event{Kind: streams.Gap, Reason: "stream pipeline fell behind Redis"}):
			p.lost = false
		default:
			p.dropped.Inc()
			return
		}
	}
	select {
	case p.ch <- rxgo.Of(ev):
	default:
		p.lost = true
		p.dropped.Inc()
	}
}

// close completes the Observable; later offers are ignored.
func (p *pump) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.ch)
	}
}

// observable is the pump as the head of an rxgo pipeline.
func (p *pump) observable() rxgo.Observable {
	return rxgo.FromChannel(p.ch)
}
