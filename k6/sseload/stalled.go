package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tmaxmax/go-sse"
)

// stalled is a stream that reads its response head and its "connected"
// event and then never reads again, like a frozen browser tab or a laptop
// whose lid closed: its TCP connection stays up and keeps acknowledging,
// but the receive window stays shut. Keyflux's frames then pile up in the
// kernel's buffers and in the server's per-client queue until the server
// cuts the client off (--queue-bytes, --write-timeout). Fanout opens such
// streams (-stalled) beside the measured ones to show two things: that one
// slow client costs the others nothing, and that the server does end it.
type stalled struct {
	conn net.Conn
}

// openStalled connects like openStream and parses events only until
// "connected", so the server's subscription is live and the stream is as
// far along as a reading one. Anything the parser read past that event is
// dropped; nothing else is due yet, since the stalled streams are opened
// before any key is written.
func openStalled(ctx context.Context, t target, timeout time.Duration) (*stalled, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, body, err := handshake(ctx, t)
	if err != nil {
		return nil, err
	}
	for ev, err := range sse.Read(body, nil) {
		switch {
		case err != nil:
		case ev.Type != "connected":
			err = fmt.Errorf("first event is %q, want \"connected\"", ev.Type)
		default:
			_ = conn.SetDeadline(time.Time{}) // held, unread, for the whole run
			return &stalled{conn: conn}, nil
		}
		conn.Close()
		return nil, err
	}
	conn.Close()
	return nil, errors.New("stream ended before its \"connected\" event")
}

// openStalledAll opens n stalled streams one after another. They are few,
// so no pacing is needed; all of them are open before the measured clients
// start, so the slow client is there for the whole run.
func openStalledAll(ctx context.Context, cfg config, n int, log io.Writer) (open []*stalled, errs []error) {
	for range n {
		if ctx.Err() != nil {
			break
		}
		s, err := openStalled(ctx, cfg.target, cfg.ConnectTimeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		open = append(open, s)
	}
	fmt.Fprintf(log, "opened %d of %d stalled streams (they read up to \"connected\", then never again)\n", len(open), n)
	return open, errs
}

func (s *stalled) close() { _ = s.conn.Close() }
