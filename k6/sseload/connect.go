package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxConnects bounds a connect run.
const maxConnects = 1_000_000

// checkConnect validates the flags of -mode connect and puts the
// credentials into the request head. They are checked byte by byte: a CR
// or LF in either would let a flag write headers of its own.
func (c *config) checkConnect() error {
	switch {
	case c.N < 1 || c.N > maxConnects:
		return fmt.Errorf("-n %d: want 1 to %d", c.N, maxConnects)
	case c.Concurrency < 1 || c.Concurrency > maxClients:
		return fmt.Errorf("-concurrency %d: want 1 to %d", c.Concurrency, maxClients)
	}
	if c.Path != "" {
		u, err := url.ParseRequestURI(c.Path)
		if err != nil || u.Host != "" || !strings.HasPrefix(c.Path, "/") {
			return fmt.Errorf("-path %q: want a path and query such as /streams/keyspace?pattern=load:*", c.Path)
		}
		c.target.requestURI = u.RequestURI()
	}
	var h strings.Builder
	if c.Token != "" {
		if !headerSafe(c.Token) {
			return errors.New("-token: only printable ASCII without spaces")
		}
		h.WriteString("Authorization: Bearer " + c.Token + "\r\n")
	}
	if c.Cookie != "" {
		name, value, ok := strings.Cut(c.Cookie, "=")
		if !ok || name == "" || !headerSafe(name) || strings.ContainsAny(name, `=()<>@:\"/[]?{}`) ||
			!headerSafe(value) || strings.ContainsAny(value, `"\`) {
			return fmt.Errorf("-cookie: want name=value (a token for the name, printable ASCII for the value, no ; , or spaces)")
		}
		h.WriteString("Cookie: " + c.Cookie + "\r\n")
	}
	c.target.header = h.String()
	return nil
}

// headerSafe is true for printable ASCII with no space, ';' or ',': what
// a token or a cookie's name and value may hold.
func headerSafe(s string) bool {
	for i := range len(s) {
		if b := s[i]; b <= ' ' || b >= 0x7f || b == ';' || b == ',' {
			return false
		}
	}
	return true
}

// runConnect opens -n streams, -concurrency at a time, and times each from
// dial to its "connected" event: the server has then parsed the request,
// checked its credentials and scopes, and made its Redis subscription
// live. Each stream is closed at once, so the server holds at most
// -concurrency of them and every connect meets the same server. The topic
// of a repeated path lingers (--linger) between connects, so after the
// first one the figure is the server's per-request cost, which is where
// authentication adds its share. Any refusal or failure fails the run: a
// server that refuses a stream was not measured.
func runConnect(ctx context.Context, cfg config, out, log io.Writer) error {
	t := cfg.target
	auth := "no credentials"
	switch {
	case cfg.Token != "" && cfg.Cookie != "":
		auth = "bearer token and cookie"
	case cfg.Token != "":
		auth = "bearer token"
	case cfg.Cookie != "":
		auth = "cookie"
	}
	fmt.Fprintf(log, "connecting %d streams to http://%s%s, %d at a time, %s\n", cfg.N, t.host, t.requestURI, cfg.Concurrency, auth)
	tally := newTally()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && int(next.Add(1)) <= cfg.N {
				began := time.Now()
				s, err := openStalled(ctx, t, cfg.ConnectTimeout)
				took := time.Since(began)
				if err == nil {
					s.close()
				}
				tally.record(took, err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			c, r, f := tally.counts()
			fmt.Fprintf(log, "  %5.1fs  %d connected, %d refused, %d failed, of %d\n", time.Since(start).Seconds(), c, r, f, cfg.N)
		}
	}
	wall := time.Since(start)

	connected, refused, failed := tally.counts()
	total := connected + refused + failed
	fmt.Fprintf(out, "mode connect: %d streams of http://%s%s, %d at a time, %s, in %.1fs (%.0f/s)\n",
		total, t.host, t.requestURI, cfg.Concurrency, auth, wall.Seconds(), float64(total)/wall.Seconds())
	fmt.Fprintf(out, "connected %d, refused %d%s, failed %d\n", connected, refused, byStatus(tally.refused), failed)
	if connected > 0 {
		h := &tally.took
		mean := tally.sum / time.Duration(connected)
		fmt.Fprintf(out, "connect time (dial to \"connected\"): mean %v  p50 %v  p99 %v  max %v\n",
			us(mean), us(h.quantile(0.5)), us(h.quantile(0.99)), us(h.maxLatency()))
	}
	if refused > 0 {
		fmt.Fprintf(out, "first refusal: %v\n", tally.refusal)
	}
	if failed > 0 {
		fmt.Fprintf(out, "%d connects failed:%s\n", failed, errorSummary(tally.errs))
	}
	if ctx.Err() != nil {
		return interrupted(ctx, out)
	}
	if connected != cfg.N {
		return errFailed
	}
	return nil
}
