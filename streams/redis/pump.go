package redis

import (
	"cmp"
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/reactivex/rxgo/v2"
)

const (
	// overflowQuiet is how long a pump that dropped messages waits for the
	// drops to stop before it sends its reset: a burst that overflows the
	// queue again and again costs each client one reset, not one per refill.
	overflowQuiet = 100 * time.Millisecond
	// overflowMaxDelay bounds that wait under a load that never stops: a
	// loss is announced this long after its first drop at the latest.
	overflowMaxDelay = 500 * time.Millisecond
	// gapSettle is how long a Gap learned from outside the message flow
	// (owe) waits for one that explains the same loss better (a reconnect's
	// Gap after the keyspace flags it re-applied).
	gapSettle = 50 * time.Millisecond
	// drainPoll is how often a due reset looks for room in a full queue.
	drainPoll = 10 * time.Millisecond
	// handSlots is the channel the pipeline reads; past it, items wait in
	// a slice that grows only under a backlog and is let go once drained.
	// A channel's buffer is allocated in full, and idle: 4096 slots cost
	// every lingering topic 128 KiB.
	handSlots = 32
)

// pump hands items from a Redis connection's reader goroutine to a pipeline.
// rueidis runs message callbacks on the reader, so a blocking callback would
// stall every reply on that connection: the pump never blocks. When the
// pipeline falls behind it drops messages until its queue has drained to a
// quarter (hysteresis: not one drop per freed slot), and owes a Gap
// (ResetOverflow). The Gap goes once the drops have stopped for
// overflowQuiet, or overflowMaxDelay after the first, whether or not
// another message arrives: subscribers learn promptly, and once per burst,
// that they must resynchronise.
type pump struct {
	mu      sync.Mutex
	ch      chan rxgo.Item // read by the pipeline
	size    int            // items the pump holds at most, ch's included
	backlog []rxgo.Item    // what waits for room in ch, in order
	moving  bool           // a forward goroutine empties backlog
	stop    chan struct{}  // closed by close: forward gives up
	closed  bool
	dropped prometheus.Counter

	owed   streams.Event // a Gap not yet queued (Kind Gap when owed)
	owedAt time.Time
	full   bool // overflowed and not yet drained: messages are dropped
	lost   int  // messages dropped since the last Gap,
	first  time.Time
	last   time.Time   // the first and the latest of them
	timer  *time.Timer // sends the owed Gap when no message does
}

// newPump makes a pump holding size items (4096 when size is 0).
func newPump(size int, dropped prometheus.Counter) *pump {
	if size <= 0 {
		size = 4096
	}
	return &pump{ch: make(chan rxgo.Item, min(size, handSlots)), size: size,
		stop: make(chan struct{}), dropped: dropped}
}

// queued is how many items wait for the pipeline.
func (p *pump) queued() int { return len(p.ch) + len(p.backlog) }

// push queues it without blocking, unless the pump is full. Called with
// p.mu held.
func (p *pump) push(it rxgo.Item) bool {
	if len(p.backlog) == 0 {
		select {
		case p.ch <- it:
			return true
		default:
		}
	}
	if p.queued() >= p.size {
		return false
	}
	p.backlog = append(p.backlog, it)
	if !p.moving {
		p.moving = true
		go p.forward()
	}
	return true
}

// forward moves the backlog into ch as the pipeline reads it, and ends
// when the backlog is empty or the pump closed; it closes ch if the pump
// closed meanwhile, since close cannot while forward may send.
func (p *pump) forward() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.backlog) > 0 && !p.closed {
		it := p.backlog[0]
		p.mu.Unlock()
		select {
		case p.ch <- it:
		case <-p.stop:
		}
		p.mu.Lock()
		if !p.closed {
			p.backlog[0] = rxgo.Item{}
			p.backlog = p.backlog[1:]
		}
	}
	p.backlog, p.moving = nil, false // let the memory go
	if p.closed {
		close(p.ch)
	}
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

// offer queues ev, an event or state of the upstream in the order Redis
// sent it. A Gap goes at once, with any Gap owed merged into it. Ready is
// always the first item of a pump, so it always finds room.
func (p *pump) offer(ev streams.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if ev.Kind == streams.Gap {
		p.merge(ev)
		p.flush(true)
		return
	}
	p.flush(false)
	if p.full && p.queued() > p.size/4 {
		p.drop()
		return
	}
	p.full = false
	if !p.push(rxgo.Of(ev)) {
		p.full = true
		p.drop()
	}
}

// owe records a loss learned from outside the message flow (the keyspace
// flags were found switched off). Its Gap goes gapSettle later; a Gap
// offered meanwhile covers it.
func (p *pump) owe(gap streams.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.owed.Kind != streams.Gap {
		p.owedAt = time.Now()
	}
	p.merge(gap)
	p.arm(gapSettle)
}

func (p *pump) drop() {
	now := time.Now()
	if p.lost == 0 {
		p.first = now
	}
	p.lost++
	p.last = now
	p.dropped.Inc()
	p.merge(streams.Event{Kind: streams.Gap, Code: streams.ResetOverflow})
	p.arm(overflowQuiet)
}

// merge makes gap owed, or keeps the owed Gap if it names the weightier
// cause: one reset tells the client all it must know.
func (p *pump) merge(gap streams.Event) {
	if p.owed.Kind != streams.Gap || weight(gap.Code) > weight(p.owed.Code) {
		p.owed = gap
	}
}

// weight ranks reset reasons: a reconnect explains the others' losses too.
func weight(code string) int {
	switch code {
	case streams.ResetOverflow:
		return 1
	case streams.ResetNotifyConfig:
		return 2
	}
	return 3 // ResetGap, the default
}

// flush queues the owed Gap, if any, once it is due (at once when now is
// set); otherwise it arms the timer for when it will be. Called with p.mu held.
func (p *pump) flush(now bool) {
	if p.owed.Kind != streams.Gap {
		return
	}
	if due := p.due(); !now && time.Until(due) > 0 {
		p.arm(time.Until(due))
		return
	}
	gap := p.owed
	if p.lost > 0 {
		gap.Reason = cmp.Or(gap.Reason, "stream pipeline fell behind Redis") +
			"; " + strconv.Itoa(p.lost) + " messages dropped"
	}
	if p.push(rxgo.Of(gap)) {
		p.owed, p.lost = streams.Event{}, 0
	} else { // full: the Gap goes as soon as there is room
		p.arm(drainPoll)
	}
}

// due is when the owed Gap should go.
func (p *pump) due() time.Time {
	if p.lost > 0 {
		quiet, latest := p.last.Add(overflowQuiet), p.first.Add(overflowMaxDelay)
		if latest.Before(quiet) {
			return latest
		}
		return quiet
	}
	return p.owedAt.Add(gapSettle)
}

// arm makes sure the owed Gap is looked at again after d at the latest.
func (p *pump) arm(d time.Duration) {
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.tick)
	}
}

// tick sends the owed Gap when no message came to do it.
func (p *pump) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if !p.closed {
		p.flush(false)
	}
}

// close completes the Observable; later offers are ignored.
func (p *pump) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		if p.timer != nil {
			p.timer.Stop()
		}
		close(p.stop)
		if !p.moving { // else forward closes it
			close(p.ch)
		}
	}
}

// observable is the pump as the head of an rxgo pipeline.
func (p *pump) observable() rxgo.Observable {
	return rxgo.FromChannel(p.ch)
}
