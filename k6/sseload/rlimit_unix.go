//go:build unix

package main

import (
	"fmt"
	"io"
	"syscall"
)

// fdSpare is what a run needs beyond one descriptor per stream: stdio, the
// Redis connection, /metrics requests and the runtime's own.
const fdSpare = 64

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit, since each
// stream is a socket and the usual soft limit (1024) stops far short of a
// 10,000-stream run. (Go's runtime does the same at start-up on Linux; this
// keeps the tool right where it does not.) It fails early when even the
// hard limit is too low for clients streams, rather than after the ramp.
func raiseNoFile(log io.Writer, clients int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising the open-file limit from %d to %d: %w", old, lim.Max, err)
		}
		fmt.Fprintf(log, "open-file limit raised from %d to %d\n", old, lim.Cur)
	}
	if need := uint64(clients) + fdSpare; lim.Cur < need {
		return fmt.Errorf("%d streams need about %d open files, but this process may have only %d (hard limit); lower -clients",
			clients, need, lim.Cur)
	}
	return nil
}
