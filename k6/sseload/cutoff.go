package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// slowConsumerComment begins the last line Keyflux writes to a client it
// disconnects because its queue overflowed (": slow consumer: more than N
// bytes queued, ..."). Frames end with a blank line, so the comment always
// follows a newline, which keeps a key or data that merely contains the
// words from counting.
const slowConsumerComment = "\n: slow consumer"

// drainQuiet is how long draining waits for more bytes before it decides a
// stalled stream is still open. The server writes whatever it holds as soon
// as the window opens, and on loopback that arrives within microseconds;
// but on a machine loaded by a whole test suite its writer may wait for a
// CPU for over a second (seen once in CI), so the verdict waits longer.
const drainQuiet = 3 * time.Second

// How a drained stalled stream ended.
const (
	endEOF       = "EOF"        // the server closed it: FIN after the data
	endReset     = "reset"      // the server closed it with data unsent: RST
	endOpen      = "still open" // nothing more for drainQuiet: not cut off
	endInterrupt = "interrupted"
)

// cutOff is what draining a stalled stream after the run found. Only once
// the client reads again can it see whether the server ended the
// connection: until then the FIN (or the final comment) waits behind
// everything else in the socket buffers.
type cutOff struct {
	bytes   int64  // read while draining: what the socket buffers held for it
	end     string // one of the end* values, or the read error
	comment bool   // the server's slow-consumer comment was among the bytes
}

// byServer reports whether the server ended the stream.
func (c cutOff) byServer() bool {
	return c.comment || c.end == endEOF || c.end == endReset
}

func (c cutOff) String() string {
	verdict := "NOT cut off"
	if c.byServer() {
		verdict = "cut off by the server"
	}
	s := fmt.Sprintf("%s: %s drained, then %s", verdict, kib(float64(c.bytes)/1024), c.end)
	if c.comment {
		s += `; final comment ": slow consumer..." seen`
	}
	return s
}

// drain reads everything the stalled stream has been sent, until the
// server ends the connection or nothing arrives for drainQuiet.
func (s *stalled) drain(ctx context.Context) cutOff {
	var (
		c    cutOff
		buf  = make([]byte, 64<<10)
		tail []byte // the last bytes of the previous read: the comment may straddle two
	)
	for {
		if ctx.Err() != nil {
			c.end = endInterrupt
			return c
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(drainQuiet))
		n, err := s.conn.Read(buf)
		if n > 0 {
			c.bytes += int64(n)
			if !c.comment {
				chunk := append(tail, buf[:n]...)
				c.comment = bytes.Contains(chunk, []byte(slowConsumerComment))
				tail = append(tail[:0], chunk[max(len(chunk)-len(slowConsumerComment)+1, 0):]...)
			}
		}
		if err != nil {
			c.end = endOf(err)
			return c
		}
	}
}

// endOf names how a read ended.
func endOf(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return endEOF
	case errors.Is(err, syscall.ECONNRESET):
		return endReset
	case errors.Is(err, os.ErrDeadlineExceeded):
		return endOpen
	default:
		return strings.TrimSpace(err.Error())
	}
}

// reportStalled drains every stalled stream, says for each whether the
// server cut it off, and prints the server's own count of the clients it
// cut off for falling behind. It reports false if any stalled stream was
// left open: the server then failed to protect itself from it (or the run
// was too short to fill its buffers, which the byte count shows).
func reportStalled(ctx context.Context, out io.Writer, stuck []*stalled, metricsURL string) bool {
	if len(stuck) == 0 {
		return true
	}
	ok := true
	for i, s := range stuck {
		c := s.drain(ctx)
		ok = ok && c.byServer()
		fmt.Fprintf(out, "stalled %d: %s\n", i+1, c)
	}
	m, err := scrapeMetrics(ctx, metricsURL)
	if err != nil {
		fmt.Fprintln(out, "server metrics unavailable:", err)
		return ok
	}
	fmt.Fprintf(out, "server %s %g", metricSlow, m[metricSlow])
	if series := m.series(metricSlow); len(series) > 0 {
		fmt.Fprintf(out, " (%s)", strings.Join(series, ", "))
	}
	fmt.Fprintln(out)
	return ok
}
