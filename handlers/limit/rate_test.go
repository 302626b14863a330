package limit

import (
	"net/netip"
	"testing"
	"time"
)

func addrN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestRatesStayBounded(t *testing.T) {
	r := newRates(1, 5, 100)
	now := time.Now()
	for i := range 10_000 { // each a new address, all within one refill time
		r.allow(addrN(i), now, 1)
	}
	if n := r.size(); n > 100 {
		t.Fatalf("%d addresses remembered, cap 100", n)
	}
}

func TestRatesForgetRefilledBuckets(t *testing.T) {
	r := newRates(10, 5, 1000) // refills in 0.5 s
	now := time.Now()
	for i := range 50 {
		r.allow(addrN(i), now, 1)
	}
	if n := r.size(); n != 50 {
		t.Fatalf("%d remembered, want 50", n)
	}
	r.allow(addrN(99), now.Add(time.Second), 1) // past the refill time: sweeps
	if n := r.size(); n != 1 {
		t.Fatalf("%d remembered after their buckets refilled, want 1", n)
	}
}

func TestRatesRefill(t *testing.T) {
	r := newRates(10, 1, 10)
	now := time.Now()
	a := addrN(1)
	if ok, _ := r.allow(a, now, 1); !ok {
		t.Fatal("first stream refused")
	}
	ok, wait := r.allow(a, now, 1)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("second at once: ok %v, wait %v; want refused, about 100 ms", ok, wait)
	}
	if ok, _ := r.allow(a, now.Add(wait), 1); !ok {
		t.Fatalf("refused again after the wait it was told (%v)", wait)
	}
}

// TestRatesCostN: a request for n subscriptions takes n tokens (a combined
// stream with 32 subs is 32 streams' worth), never more than a burst.
func TestRatesCostN(t *testing.T) {
	r := newRates(1, 10, 10)
	now := time.Now()
	a := addrN(1)
	if ok, _ := r.allow(a, now, 8); !ok {
		t.Fatal("8 of a burst of 10 refused")
	}
	ok, wait := r.allow(a, now, 8)
	if ok || wait < 5*time.Second || wait > 6*time.Second {
		t.Fatalf("8 more with 2 left: ok %v, wait %v; want refused, about 6 s", ok, wait)
	}
	if ok, _ := r.allow(addrN(2), now, 1000); !ok {
		t.Fatal("a cost past the burst must take the whole burst, not be refused for ever")
	}
	if ok, _ := r.allow(addrN(2), now, 1); ok {
		t.Fatal("the burst was not taken")
	}
}
