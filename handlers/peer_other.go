//go:build !unix

package handlers

import "syscall"

// peerClosed cannot peek without blocking here; a vanished client is found
// by the heartbeat's failing write instead.
func peerClosed(syscall.RawConn) bool { return false }
