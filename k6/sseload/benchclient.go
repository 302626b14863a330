package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// leanClient is one raw-TCP SSE stream of -mode bench. At 200,000
// deliveries a second on two cores the tool's own CPU is taken from the
// server it measures, so it parses nothing but data lines: a line that
// holds the marker is one delivery, the digits after it its sequence
// number. Any server's framing works, whatever it wraps the payload in.
type leanClient struct {
	conn     net.Conn
	received atomic.Int64
	warm     atomic.Bool // a warm-up event arrived
	err      error       // why the reader stopped; read after done
	done     chan struct{}
	closing  atomic.Bool
}

// benchSink is where every client's deliveries are counted and timed.
type benchSink struct {
	marker  []byte
	base    time.Time
	sentAt  []atomic.Int64 // per seq: offset from base in ns, plus 1
	total   atomic.Int64
	dups    atomic.Int64 // a seq seen twice by one client
	foreign atomic.Int64 // the marker followed by an unknown seq
	warmed  atomic.Int64 // clients with their warm-up event
	latency histogram
}

// openLean connects and checks the response head; the stream is live
// once the head is in (readiness beyond that is the warm-up's job, since
// not every server sends a first event).
func openLean(ctx context.Context, t target, timeout time.Duration, sink *benchSink) (*leanClient, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, body, err := handshake(ctx, t)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	c := &leanClient{conn: conn, done: make(chan struct{})}
	go c.read(body, sink)
	return c, nil
}

// read scans the stream line by line until it ends.
func (c *leanClient) read(body io.Reader, s *benchSink) {
	defer close(c.done)
	br := bufio.NewReaderSize(body, 4096)
	seen := newSeqSet(len(s.sentAt))
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // a long line: skip the rest
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if err != nil {
			c.err = err
			return
		}
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		i := bytes.Index(line, s.marker)
		if i < 0 {
			continue
		}
		rest := line[i+len(s.marker):]
		if len(rest) > 0 && rest[0] == 'w' {
			if !c.warm.Swap(true) {
				s.warmed.Add(1)
			}
			continue
		}
		seq, ok := leadingInt(rest)
		if !ok {
			continue // the marker in other text, such as a pattern in "connected"
		}
		if seq >= len(s.sentAt) {
			s.foreign.Add(1)
			continue
		}
		sent := s.sentAt[seq].Load()
		if sent == 0 {
			s.foreign.Add(1)
			continue
		}
		if !seen.add(seq) {
			s.dups.Add(1)
			continue
		}
		s.latency.record(time.Since(s.base) - time.Duration(sent-1))
		c.received.Add(1)
		s.total.Add(1)
	}
}

// leadingInt parses the decimal digits at the start of b.
func leadingInt(b []byte) (int, bool) {
	n, i := 0, 0
	for ; i < len(b) && i < 10 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	return n, i > 0
}

// seqSet is a bitmap of the sequence numbers a client has had.
type seqSet []uint64

func newSeqSet(n int) seqSet { return make(seqSet, (n+63)/64) }

// add marks seq and reports whether it was new.
func (s seqSet) add(seq int) bool {
	w, bit := seq/64, uint64(1)<<(seq%64)
	if s[w]&bit != 0 {
		return false
	}
	s[w] |= bit
	return true
}

// dropped reports whether the stream ended without this tool closing it.
func (c *leanClient) dropped() bool {
	select {
	case <-c.done:
		return !c.closing.Load()
	default:
		return false
	}
}

// closeLean closes every client and waits for their readers.
func closeLean(all []*leanClient) {
	for _, c := range all {
		c.closing.Store(true)
		_ = c.conn.Close()
	}
	for _, c := range all {
		<-c.done
	}
}

// openLeanAll opens n clients at rate a second, at most 32 handshakes at
// once, and returns those that connected, the errors of the others, and
// how many times a refused stream was asked for again.
func openLeanAll(ctx context.Context, cfg benchConfig, sink *benchSink, log io.Writer) ([]*leanClient, []error, int64, time.Duration) {
	var retries atomic.Int64
	var mu sync.Mutex
	clients := make([]*leanClient, 0, cfg.Clients)
	var errs []error
	took := paced(ctx, cfg.Clients, time.Duration(float64(time.Second)/cfg.Rate), 32, func(int) {
		c, err := openLean(ctx, cfg.target, cfg.Connect, sink)
		// A server that sheds a burst (429, 503) is asked again: the
		// ramp is not what is measured.
		for try := 0; try < 5 && err != nil && (refusedStatus(err) == 429 || refusedStatus(err) == 503); try++ {
			retries.Add(1)
			if !sleepCtx(ctx, time.Duration(100<<try)*time.Millisecond) {
				break
			}
			c, err = openLean(ctx, cfg.target, cfg.Connect, sink)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		clients = append(clients, c)
	}, func(elapsed time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(log, "  %5.1fs  %d streams open, %d failed\n", elapsed.Seconds(), len(clients), len(errs))
	})
	return clients, errs, retries.Load(), took
}
