package redis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// Every process reads every journal its topics need. A blocking XREAD
// holds a connection of its own, so one per journal would cost Redis a
// connection per channel; one XREAD for all of them would make Redis look
// at every journal each time any one has news. Readers split the
// difference: each tails up to readerJournals journals with one XREAD.
const readerJournals = 32

// journalReadCount bounds the entries of one journal one read returns:
// payloads come from Redis, any size, and one XREAD reads 32 journals.
const journalReadCount = 64

// readers are a process's journal readers.
type readers struct {
	mu     sync.Mutex
	shards []*reader
	wg     sync.WaitGroup
}

// reader tails a few journals with one blocking XREAD.
type reader struct {
	mu       sync.Mutex
	journals map[*journal]struct{}
	cancel   context.CancelFunc // ends the XREAD in flight, to add a journal
	wake     chan struct{}
	closed   bool
}

// startReading reads where the journal ends now, tells the listeners, and
// has a reader tail it from there. False when the journal stopped first.
func (j *journal) startReading() bool {
	var wait streams.Backoff
	for {
		at, err := j.tailID(j.ctx)
		if err == nil {
			j.rmu.Lock()
			j.at = at
			for l := range j.listeners {
				l.ready(at)
			}
			j.rmu.Unlock()
			j.js.readers.add(j)
			return true
		}
		if j.ctx.Err() != nil {
			return false
		}
		j.log.Warn("reading the journal failed; retrying", "err", err)
		if !wait.Wait(j.ctx) {
			return false
		}
	}
}

// tailID is the id of the journal's last entry, "0-0" when it is empty.
func (j *journal) tailID(ctx context.Context) (string, error) {
	c := j.js.Client
	entries, err := c.Do(ctx, c.B().Xrevrange().Key(j.key).End("+").Start("-").Count(1).Build()).AsXRangeSlices()
	if err != nil || len(entries) == 0 {
		return "0-0", err
	}
	return entries[0].ID, nil
}

// deliver hands entries read after j.at to the listeners.
func (j *journal) deliver(entries []rueidis.XRangeSlice) {
	j.rmu.Lock()
	defer j.rmu.Unlock()
	for _, e := range entries {
		je := parseEntry(e)
		for l := range j.listeners {
			l.entry(je)
		}
		j.at = e.ID
	}
}

func (rs *readers) add(j *journal) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var r *reader
	for _, sh := range rs.shards {
		sh.mu.Lock()
		if len(sh.journals) < readerJournals {
			r = sh
			break
		}
		sh.mu.Unlock()
	}
	if r == nil {
		r = &reader{journals: make(map[*journal]struct{}), wake: make(chan struct{}, 1)}
		rs.shards = append(rs.shards, r)
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			r.run(j.js)
		}()
		r.mu.Lock()
	}
	r.journals[j] = struct{}{}
	if r.cancel != nil {
		r.cancel() // the XREAD in flight does not know j yet
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (rs *readers) remove(j *journal) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.shards {
		r.mu.Lock()
		delete(r.journals, j)
		r.mu.Unlock()
	}
}

// close stops every reader and waits for them.
func (rs *readers) close() {
	rs.mu.Lock()
	for _, r := range rs.shards {
		r.mu.Lock()
		r.closed = true
		if r.cancel != nil {
			r.cancel()
		}
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	rs.shards = nil
	rs.mu.Unlock()
	rs.wg.Wait()
}

// run tails the reader's journals until closed. A failed read resumes after
// the last entry each journal delivered: nothing is lost.
func (r *reader) run(js *Journals) {
	c := js.Client
	block := js.Block
	if block <= 0 {
		block = 10 * time.Second
	}
	var wait streams.Backoff
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		var (
			list []*journal
			keys []string
			ids  []string
		)
		for j := range r.journals {
			j.rmu.Lock()
			list, keys, ids = append(list, j), append(keys, j.key), append(ids, j.at)
			j.rmu.Unlock()
		}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		r.mu.Unlock()
		if len(list) == 0 {
			cancel()
			<-r.wake
			continue
		}
		cmd := c.B().Xread().Count(journalReadCount).Block(block.Milliseconds()).Streams().Key(keys...).Id(ids...).Build()
		res, err := c.Do(ctx, cmd).AsXReadSlices()
		interrupted := ctx.Err() != nil
		cancel()
		r.mu.Lock()
		r.cancel = nil
		r.mu.Unlock()
		if interrupted {
			continue // a journal joined, or the reader closes
		}
		if err != nil && !rueidis.IsRedisNil(err) {
			js.logger().Warn("tailing journals failed; retrying", "journals", len(keys), "err", err)
			t := time.NewTimer(wait.Next())
			select {
			case <-r.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		wait.Reset()
		for _, j := range list {
			if entries := res[j.key]; len(entries) > 0 {
				r.mu.Lock()
				_, still := r.journals[j]
				r.mu.Unlock()
				if still {
					j.deliver(entries)
				}
			}
		}
	}
}
