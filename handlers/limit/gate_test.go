package limit

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

var (
	alice = netip.MustParseAddr("192.0.2.1")
	bob   = netip.MustParseAddr("192.0.2.2")
)

func refusal(t *testing.T, err error) *Refused {
	t.Helper()
	r, ok := err.(*Refused)
	if !ok {
		t.Fatalf("want a refusal, got %v", err)
	}
	if r.RetryAfter <= 0 || r.RetryAfterSeconds() == "0" {
		t.Fatalf("refusal without a Retry-After: %+v", r)
	}
	return r
}

func TestGateCountsPerAddressAndInAll(t *testing.T) {
	g := NewGate(Options{MaxClients: 3, MaxClientsPerAddr: 2})
	var releases []func()
	for range 2 {
		rel, err := g.Admit(alice, nil)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
	}
	_, err := g.Admit(alice, nil)
	if r := refusal(t, err); r.Status != http.StatusTooManyRequests || r.Reason != "max-clients-per-ip" {
		t.Fatalf("third stream of one address: %+v", r)
	}
	rel, err := g.Admit(bob, nil)
	if err != nil {
		t.Fatal(err)
	}
	releases = append(releases, rel)
	_, err = g.Admit(netip.MustParseAddr("192.0.2.3"), nil)
	if r := refusal(t, err); r.Status != http.StatusServiceUnavailable || r.Reason != "max-clients" {
		t.Fatalf("fourth stream in all: %+v", r)
	}
	releases[0]()
	releases[0]() // a second release must not free someone else's place
	if n, addrs := g.Open(); n != 2 || addrs != 2 {
		t.Fatalf("open %d from %d addresses, want 2 from 2", n, addrs)
	}
	if _, err := g.Admit(alice, nil); err != nil {
		t.Fatalf("a released place is free again: %v", err)
	}
}

func TestGateReleasesToZero(t *testing.T) {
	g := NewGate(Options{MaxClients: 100, MaxClientsPerAddr: 10})
	var releases []func()
	for i := range 50 {
		rel, err := g.Admit(netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 10)}), nil)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
	}
	for _, rel := range releases {
		rel()
	}
	if n, addrs := g.Open(); n != 0 || addrs != 0 {
		t.Fatalf("after every release: %d open from %d addresses", n, addrs)
	}
}

func TestGateRateAfterBurst(t *testing.T) {
	g := NewGate(Options{RatePerAddr: 2, BurstPerAddr: 3})
	for i := range 3 {
		rel, err := g.Admit(alice, nil)
		if err != nil {
			t.Fatalf("stream %d within the burst: %v", i, err)
		}
		rel()
	}
	_, err := g.Admit(alice, nil)
	r := refusal(t, err)
	if r.Status != http.StatusTooManyRequests || r.Reason != "stream-rate-per-ip" {
		t.Fatalf("past the burst: %+v", r)
	}
	if r.RetryAfter > time.Second/2+10*time.Millisecond {
		t.Fatalf("at 2/s the next token is at most 0.5 s away, told %v", r.RetryAfter)
	}
	if n, _ := g.Open(); n != 0 {
		t.Fatalf("a stream refused by rate still counts: %d open", n)
	}
	if _, err := g.Admit(bob, nil); err != nil {
		t.Fatalf("another address has its own burst: %v", err)
	}
}

func TestGateTrustsForwardedOnlyFromProxies(t *testing.T) {
	proxy := netip.MustParseAddr("10.0.0.1")
	g := NewGate(Options{MaxClientsPerAddr: 1, TrustedProxies: []netip.Prefix{netip.PrefixFrom(proxy, 32)}})
	if _, err := g.Admit(proxy, [][]byte{[]byte("203.0.113.1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(proxy, [][]byte{[]byte("203.0.113.2")}); err != nil {
		t.Fatalf("two clients behind one proxy count apart: %v", err)
	}
	refusal(t, func() error { _, err := g.Admit(proxy, [][]byte{[]byte("203.0.113.1")}); return err }())
	if _, err := g.Admit(alice, [][]byte{[]byte("203.0.113.3")}); err != nil {
		t.Fatal(err)
	}
	_, err := g.Admit(alice, [][]byte{[]byte("203.0.113.4")})
	refusal(t, err) // an untrusted peer cannot claim to be someone else
}
