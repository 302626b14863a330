package limit

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keyflux/keyflux/streams"
)

// ListenerOptions configure a Listener; zero values disable each part.
type ListenerOptions struct {
	// FirstByte is how long a new connection may send nothing. fasthttp
	// sets no deadline before the first byte, so a silent connection would
	// hold a descriptor forever; after it, fasthttp's own timeouts apply.
	FirstByte time.Duration
	// MaxRequests caps the connections that are not streams: requests
	// being read or served and idle keep-alives. Past it an idle
	// keep-alive is closed to make room, or, with none, a new connection
	// is answered 503 with Retry-After and a JSON error at once, so that
	// they cannot take the descriptors kept for streams and health checks.
	MaxRequests int
	// MaxRequestsPerPeer caps them per client address (an IPv6 /64), so
	// that one client sending heads slowly cannot take every place: past
	// it, one of that address's idle keep-alives is closed, or the new
	// connection is answered 503. Peers within TrustedProxies are exempt:
	// every client behind a proxy shares its address.
	MaxRequestsPerPeer int
	TrustedProxies     []netip.Prefix
	Logger             *slog.Logger
}

// Listener is a net.Listener whose Accept outlives a shortage of file
// descriptors. fasthttp treats any accept error but a timeout as fatal and
// stops serving; here EMFILE and ENFILE wait and retry instead, leaving
// the pending connections in the kernel's backlog until descriptors are
// free again (a stream ends, a request finishes). It also bounds the
// connections that are not streams (ListenerOptions); ConnState must be
// fasthttp's Server.ConnState for that.
type Listener struct {
	net.Listener
	opts     ListenerOptions
	requests atomic.Int64 // connections accepted and not yet hijacked or closed
	trusted  Addrs
	idleMu   sync.Mutex
	idle     map[net.Conn]struct{} // keep-alives waiting for a request: closed first
	perPeer  map[netip.Addr]int    // requests by peer address, untrusted peers only (guarded by idleMu)
	backoff  streams.Backoff
	done     chan struct{}
	once     sync.Once
	logged   time.Time // the last shortage logged; only Accept touches it
}

// NewListener wraps ln.
func NewListener(ln net.Listener, opts ListenerOptions) *Listener {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Listener{
		Listener: ln, opts: opts, done: make(chan struct{}), idle: make(map[net.Conn]struct{}),
		perPeer: make(map[netip.Addr]int), trusted: NewAddrs(opts.TrustedProxies),
		backoff: streams.Backoff{Min: 5 * time.Millisecond, Max: 500 * time.Millisecond},
	}
}

// Accept waits for the next connection, retrying while the process or the
// system is out of descriptors.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.backoff.Reset()
			if !l.admit(c) {
				refuse(c)
				continue
			}
			if l.opts.FirstByte > 0 {
				_ = c.SetReadDeadline(time.Now().Add(l.opts.FirstByte))
			}
			return c, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return nil, err
		}
		if time.Since(l.logged) >= 10*time.Second {
			l.logged = time.Now()
			l.opts.Logger.Warn("out of file descriptors: new connections wait; lower --max-clients or raise the open-file limit", "err", err)
		}
		t := time.NewTimer(l.backoff.Next())
		select {
		case <-l.done:
			t.Stop()
			return nil, net.ErrClosed
		case <-t.C:
		}
	}
}

// ConnState is fasthttp's Server.ConnState hook: a connection hijacked
// into a stream, or closed, no longer counts against MaxRequests; an idle
// one may be closed to make room.
func (l *Listener) ConnState(c net.Conn, state fasthttp.ConnState) {
	if l.opts.MaxRequests <= 0 {
		return
	}
	gone := state == fasthttp.StateHijacked || state == fasthttp.StateClosed
	l.idleMu.Lock()
	if state == fasthttp.StateIdle {
		l.idle[c] = struct{}{}
	} else {
		delete(l.idle, c)
	}
	if gone {
		l.uncount(c)
	}
	l.idleMu.Unlock()
}

// admit counts a new connection, first closing an idle keep-alive when its
// peer, or everyone, is at the cap; false, counting nothing, when there is
// none to close.
func (l *Listener) admit(c net.Conn) bool {
	if l.opts.MaxRequests <= 0 {
		return true
	}
	l.idleMu.Lock()
	defer l.idleMu.Unlock()
	peer, perPeer := l.peer(c)
	if perPeer && l.perPeer[peer] >= l.opts.MaxRequestsPerPeer && !l.closeIdle(func(x netip.Addr) bool { return x == peer }) {
		return false
	}
	if l.requests.Load() >= int64(l.opts.MaxRequests) && !l.closeIdle(func(netip.Addr) bool { return true }) {
		return false
	}
	l.requests.Add(1)
	if perPeer {
		l.perPeer[peer]++
	}
	return true
}

// uncount gives c's places back. Called with idleMu held.
func (l *Listener) uncount(c net.Conn) {
	l.requests.Add(-1)
	if peer, ok := l.peer(c); ok {
		if l.perPeer[peer]--; l.perPeer[peer] <= 0 {
			delete(l.perPeer, peer)
		}
	}
}

// peer is what MaxRequestsPerPeer counts c against; false when there is no
// per-peer cap, for a trusted proxy and for a connection without an IP.
func (l *Listener) peer(c net.Conn) (netip.Addr, bool) {
	if l.opts.MaxRequestsPerPeer <= 0 {
		return netip.Addr{}, false
	}
	a := PeerAddr(c.RemoteAddr())
	if !a.IsValid() || l.trusted.isTrusted(a) {
		return netip.Addr{}, false
	}
	return key(a), true
}

// closeIdle closes one idle keep-alive connection of a peer that which
// accepts, if there is one; its places are given back when fasthttp
// notices (ConnState). Called with idleMu held.
func (l *Listener) closeIdle(which func(netip.Addr) bool) bool {
	for c := range l.idle { // any one: Go's map order
		if which(key(PeerAddr(c.RemoteAddr()))) {
			delete(l.idle, c)
			_ = c.Close()
			return true
		}
	}
	return false
}

// Requests is how many connections count against MaxRequests.
func (l *Listener) Requests() int { return int(l.requests.Load()) }

// busy is the answer past MaxRequests, written before the request is read.
var busy = func() []byte {
	body := `{"error":"too many connections being served (the open-file limit's reserve); retry later"}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) // an empty socket buffer takes it at once
	_, _ = c.Write(busy)
	_ = c.Close()
}

// Close stops accepting, a backing-off Accept included.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}
