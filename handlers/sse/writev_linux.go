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

// rawWriter makes a writer's writes. Its vector lives here, so that a
// write allocates nothing.
type rawWriter struct {
	iov []syscall.Iovec
}

func newRawWriter() *rawWriter { return &rawWriter{} }

// writev writes bufs to the socket fd with one system call, without
// waiting for the socket to accept anything (Go's sockets are
// non-blocking): a full socket gives 0 and syscall.EAGAIN. The caller
// keeps fd open meanwhile (client.writing). One frame, the usual case, is
// a plain write(2): the kernel's writev costs more, measured, for
// gathering a vector of one.
func (r *rawWriter) writev(fd int, bufs net.Buffers) (int, error) {
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
	call, arg, n := uintptr(syscall.SYS_WRITEV), uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov))
	if len(r.iov) == 1 {
		call, arg, n = syscall.SYS_WRITE, uintptr(unsafe.Pointer(r.iov[0].Base)), uintptr(r.iov[0].Len)
	}
	for {
		// RawSyscall: the call never blocks, so the scheduler need not
		// know about it.
		wrote, _, errno := syscall.RawSyscall(call, uintptr(fd), arg, n)
		if errno == syscall.EINTR {
			continue
		}
		clear(r.iov) // keep no frame alive
		if errno != 0 {
			return 0, errno
		}
		return int(wrote), nil
	}
}
