//go:build !unix

package sse

import "syscall"

// peerClosed cannot peek without blocking here; a vanished client is found
// by the heartbeat's failing write instead.
func peerClosed(syscall.RawConn) bool { return false }
