//go:build unix

package sse

import (
	"errors"
	"syscall"
)

// peerClosed reports whether the client has closed its end, with one
// non-blocking read: an SSE client never sends after its request, so a read
// that returns end-of-file means it has gone. Stray bytes are discarded.
func peerClosed(raw syscall.RawConn) bool {
	if raw == nil {
		return false
	}
	gone := false
	var buf [128]byte
	err := raw.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf[:])
			switch {
			case n > 0:
				continue
			case err == nil: // end of file
				gone = true
			case errors.Is(err, syscall.EINTR):
				continue
			case !errors.Is(err, syscall.EAGAIN):
				gone = true
			}
			return true // never wait for readability
		}
	})
	return gone || err != nil
}
