package limit

import (
	"net"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := NewAddrs([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer: header ignored", "192.0.2.7", []string{"203.0.113.9"}, "192.0.2.7"},
		{"trusted peer without header", "10.1.2.3", nil, "10.1.2.3"},
		{"trusted peer names the client", "10.1.2.3", []string{"203.0.113.9"}, "203.0.113.9"},
		{"right-most untrusted wins over what the client wrote", "10.1.2.3", []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops are skipped", "10.1.2.3", []string{"198.51.100.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"header sent twice reads as one list", "10.1.2.3", []string{"198.51.100.1", "203.0.113.9, 10.0.0.5"}, "203.0.113.9"},
		{"all trusted: the left-most", "10.1.2.3", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"garbage stops at the last trusted hop", "10.1.2.3", []string{"203.0.113.9, bogus"}, "10.1.2.3"},
		{"port and spaces", "10.1.2.3", []string{"  203.0.113.9:4711 "}, "203.0.113.9"},
		{"IPv6 with port", "10.1.2.3", []string{"[2001:db8::1]:80"}, "2001:db8::1"},
		{"mapped IPv4 peer", "::ffff:10.1.2.3", []string{"203.0.113.9"}, "203.0.113.9"},
		{"IPv6 trusted peer", "::1", []string{"203.0.113.9"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var xff [][]byte
			for _, v := range tc.xff {
				xff = append(xff, []byte(v))
			}
			got := proxies.Client(netip.MustParseAddr(tc.peer), xff)
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("Client(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestNoTrustedProxies(t *testing.T) {
	got := NewAddrs(nil).Client(netip.MustParseAddr("127.0.0.1"), [][]byte{[]byte("203.0.113.9")})
	if got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("got %s: X-Forwarded-For trusted with no proxies configured", got)
	}
}

func TestKeyGroupsIPv6By64(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if key(a) != key(b) {
		t.Fatalf("one /64 counted as two clients: %s, %s", key(a), key(b))
	}
	if key(a) == key(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatal("two /64s counted as one client")
	}
	if v4 := netip.MustParseAddr("192.0.2.1"); key(v4) != v4 || key(netip.MustParseAddr("::ffff:192.0.2.1")) != v4 {
		t.Fatal("IPv4 addresses must count one by one")
	}
}

func TestPeerAddr(t *testing.T) {
	if got := PeerAddr(&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 9}); got != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("got %s", got)
	}
	if got := PeerAddr(&net.UnixAddr{Name: "/tmp/x", Net: "unix"}); got.IsValid() {
		t.Fatalf("a Unix socket has no IP, got %s", got)
	}
}
