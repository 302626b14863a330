package limit

import (
	"bytes"
	"net"
	"net/netip"
)

// Addrs tells which client address a request counts against.
type Addrs struct {
	trusted []netip.Prefix
}

// NewAddrs trusts the X-Forwarded-For of peers within trusted, and no other.
func NewAddrs(trusted []netip.Prefix) Addrs { return Addrs{trusted: trusted} }

// Client is the address a request from peer counts against. From a trusted
// proxy it is the right-most X-Forwarded-For address that is not itself a
// trusted proxy: entries to its left were written by the client and prove
// nothing. forwarded holds the header's values in order (it may be sent
// more than once). An entry that is not an address ends the walk at the
// last trusted hop, so garbage cannot name someone else.
func (a Addrs) Client(peer netip.Addr, forwarded [][]byte) netip.Addr {
	addr := peer.Unmap()
	for i := len(forwarded) - 1; i >= 0 && a.isTrusted(addr); i-- {
		list := forwarded[i]
		for a.isTrusted(addr) {
			comma := bytes.LastIndexByte(list, ',')
			next, ok := parseHop(list[comma+1:])
			if !ok {
				return addr
			}
			addr = next
			if comma < 0 {
				break
			}
			list = list[:comma]
		}
	}
	return addr
}

func (a Addrs) isTrusted(addr netip.Addr) bool {
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711") as some proxies write it.
func parseHop(b []byte) (netip.Addr, bool) {
	s := string(bytes.TrimSpace(b))
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// PeerAddr is the IP of a connection's remote address; the zero Addr when
// it has none (a Unix socket).
func PeerAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// key is what limits count by: an IPv4 address, or an IPv6 address's /64,
// since one host is commonly given a whole /64 and could otherwise count as
// billions of clients.
func key(addr netip.Addr) netip.Addr {
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr.Unmap()
}
