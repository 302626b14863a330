//go:build linux

package sse

import (
	"net"
	"syscall"
	"unsafe"
)

// rawWrites says the writers can write: the blocking flush is the fallback.
const rawWrites = true

// maxIovecs is IOV_MAX: a longer queue goes in several writes.
const maxIovecs = 1024

// rawWriter makes a writer's writev calls. Its state lives here, and call
// is made once, so that a write allocates nothing.
type rawWriter struct {
	iov   []syscall.Iovec
	n     uintptr
	errno syscall.Errno
	call  func(fd uintptr) bool
}

func newRawWriter() *rawWriter {
	r := &rawWriter{}
	r.call = r.write
	return r
}

// writev writes bufs to raw's descriptor with one writev, without waiting
// for the socket to accept anything (Go's sockets are non-blocking): a full
// socket gives 0 and syscall.EAGAIN.
func (r *rawWriter) writev(raw syscall.RawConn, bufs net.Buffers) (int, error) {
	r.iov = r.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 && len(r.iov) < maxIovecs {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			r.iov = append(r.iov, v)
		}
	}
	if len(r.iov) == 0 {
		return 0, nil
	}
	err := raw.Write(r.call)
	clear(r.iov) // keep no frame alive
	switch {
	case err != nil: // closed, or past a deadline of the blocking flush
		return 0, err
	case r.errno != 0:
		return 0, r.errno
	}
	return int(r.n), nil
}

func (r *rawWriter) write(fd uintptr) bool {
	for {
		r.n, _, r.errno = syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov)))
		if r.errno != syscall.EINTR {
			return true // one attempt: a full socket is the blocking flush's
		}
	}
}
