//go:build linux

package sse

import (
	"syscall"
	"unsafe"
)

// maxIovecs is IOV_MAX: a longer queue goes in several writes.
const maxIovecs = 1024

// rawWrites says the writers can write: the blocking flush is the fallback.
const rawWrites = true

type iovecT = syscall.Iovec

func iovec(b []byte) iovecT {
	v := syscall.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}

// writevRaw makes one writev of iov on raw's descriptor, without waiting
// for the socket to accept anything (Go's sockets are non-blocking).
func writevRaw(raw syscall.RawConn, iov []iovecT) (int, error) {
	if len(iov) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := raw.Write(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			if errno != syscall.EINTR {
				return true // one attempt: a full socket is the blocking flush's
			}
		}
	})
	switch {
	case err != nil: // closed, or a deadline of the blocking flush
		return 0, err
	case errno != 0:
		return 0, errno
	}
	return int(n), nil
}
