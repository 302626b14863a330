package limit

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a stream is refused, as the limit label of
// keyflux_clients_refused_total.
const (
	reasonClients        = "max-clients"
	reasonClientsPerAddr = "max-clients-per-ip"
	reasonRate           = "stream-rate-per-ip"
	reasonSets           = "sets-per-ip"
)

// capacityRetry is the shortest Retry-After when streams are full; each
// refused client is told a time from [capacityRetry, 2 x capacityRetry) so
// that they do not all come back at once.
const capacityRetry = 5 * time.Second

// Options are the limits of a Gate; a zero limit is no limit.
type Options struct {
	MaxClients        int     // open streams in all
	MaxClientsPerAddr int     // open streams per client address
	RatePerAddr       float64 // new streams per second per client address
	BurstPerAddr      int     // new streams an address may open at once
	TrustedProxies    []netip.Prefix
	Registerer        prometheus.Registerer
}

// Gate admits new streams within the limits and counts them until they end.
type Gate struct {
	addrs   Addrs
	clients *clients
	rates   *rates // nil: no rate limit
	sets    setRates
	refused *prometheus.CounterVec
}

// NewGate returns a gate with opts' limits.
func NewGate(opts Options) *Gate {
	g := &Gate{
		addrs:   NewAddrs(opts.TrustedProxies),
		clients: newClients(opts.MaxClients, opts.MaxClientsPerAddr),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyflux_clients_refused_total",
			Help: "New streams refused by a client limit (503 or 429), by the limit's flag.",
		}, []string{"limit"}),
	}
	if opts.RatePerAddr > 0 {
		g.rates = newRates(opts.RatePerAddr, max(opts.BurstPerAddr, 1), maxRateAddrs)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(g.refused)
	}
	return g
}

// Refused is why a stream was not admitted: the status to answer with, a
// message for the JSON error and when to come back.
type Refused struct {
	Status     int
	Reason     string // the flag of the limit that was hit
	RetryAfter time.Duration
}

func (e *Refused) Error() string {
	if e.Reason == reasonSets {
		return "too many sets created from your address (one per 5 s, 10 at once); retry later"
	}
	if e.Status == http.StatusServiceUnavailable {
		return "too many open streams (--" + e.Reason + "); retry later"
	}
	return "too many streams from your address (--" + e.Reason + "); retry later"
}

// RetryAfterSeconds is the Retry-After header's value: whole seconds, at
// least one.
func (e *Refused) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int((e.RetryAfter+time.Second-1)/time.Second)))
}

// Admit decides whether a stream from peer may open; forwarded are the
// request's X-Forwarded-For values. Once admitted, the stream counts until
// release is called, which must happen when it ends, however it ends;
// calling release again does nothing.
func (g *Gate) Admit(peer netip.Addr, forwarded [][]byte) (release func(), err error) {
	return g.AdmitN(peer, forwarded, 1)
}

// AdmitN is Admit for a stream that asks for n subscriptions at once (a
// combined stream's subs): it takes n tokens of the address's rate, at most
// a whole burst, so that one request cannot open many streams' worth of
// Redis subscriptions for the price of one.
func (g *Gate) AdmitN(peer netip.Addr, forwarded [][]byte, n int) (release func(), err error) {
	addr := key(g.addrs.Client(peer, forwarded))
	if reason := g.clients.acquire(addr); reason != "" {
		return nil, g.refuse(reason, capacityRetry+rand.N(capacityRetry))
	}
	if g.rates != nil {
		if ok, wait := g.rates.allow(addr, time.Now(), n); !ok {
			g.clients.release(addr)
			return nil, g.refuse(reasonRate, wait)
		}
	}
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			g.clients.release(addr)
		}
	}, nil
}

func (g *Gate) refuse(reason string, retry time.Duration) *Refused {
	g.refused.WithLabelValues(reason).Inc()
	status := http.StatusTooManyRequests
	if reason == reasonClients {
		status = http.StatusServiceUnavailable
	}
	return &Refused{Status: status, Reason: reason, RetryAfter: retry}
}

// Open returns how many admitted streams have not been released, and from
// how many client addresses.
func (g *Gate) Open() (streams, addrs int) { return g.clients.counts() }
