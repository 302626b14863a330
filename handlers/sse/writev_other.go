//go:build !linux

package sse

import (
	"errors"
	"syscall"
)

const maxIovecs = 1024

// rawWrites is Linux's only: elsewhere every write is the blocking flush's.
const rawWrites = false

type iovecT struct{}

func iovec([]byte) iovecT { return iovecT{} }

func writevRaw(syscall.RawConn, []iovecT) (int, error) { return 0, errors.ErrUnsupported }
