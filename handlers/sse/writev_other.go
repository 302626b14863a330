//go:build !linux

package sse

import (
	"errors"
	"net"
)

// rawWrites is Linux's only: elsewhere every write is the blocking flush's.
const rawWrites = false

type rawWriter struct{}

func newRawWriter() *rawWriter { return &rawWriter{} }

func (*rawWriter) writev(int, net.Buffers) (int, error) { return 0, errors.ErrUnsupported }
