package sse

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// BenchmarkSinkFanout sends one 100-byte frame to 1,000 clients on
// loopback TCP per iteration, through their queues and the writers, while
// each client reads: the sink's cost per delivery, system calls and the
// readers included (the kernel's floor is one write(2) per client;
// docs/performance.md).
func BenchmarkSinkFanout(b *testing.B) {
	const clients = 1000
	k := NewSink(SinkOptions{Heartbeat: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer k.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var read, want atomic.Int64
	reached := make(chan struct{}, 1)
	var readers sync.WaitGroup
	recvs := make([]streams.Receiver, 0, clients)
	for range clients {
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		srv, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer cli.Close()
			buf := make([]byte, 4096)
			for {
				n, err := cli.Read(buf)
				if read.Add(int64(n)) >= want.Load() {
					select {
					case reached <- struct{}{}:
					default:
					}
				}
				if err != nil {
					return
				}
			}
		}()
		err = k.Serve(srv, Stream{Subscribe: func(r streams.Receiver) ([]*streams.Subscription, error) {
			recvs = append(recvs, r)
			return nil, nil
		}})
		if err != nil {
			b.Fatal(err)
		}
	}
	until := func(n int64) {
		want.Store(n)
		for read.Load() < n {
			<-reached
		}
	}
	until(int64(clients * len(k.head(""))))
	f := benchFrame(b, 100)
	round := int64(clients * len(f.Bytes))
	b.Run("one-at-a-time", func(b *testing.B) {
		// Each fan-out is read before the next: one write per delivery.
		start := read.Load()
		b.ReportAllocs()
		for i := range b.N {
			for _, r := range recvs {
				r.Send(f)
			}
			until(start + int64(i+1)*round)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/clients, "ns/delivery")
	})
	b.Run("burst", func(b *testing.B) {
		// Fan-outs queue up behind each other: writes carry several frames.
		start := read.Load()
		b.ReportAllocs()
		for range b.N {
			for _, r := range recvs {
				r.Send(f)
			}
		}
		until(start + int64(b.N)*round)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/clients, "ns/delivery")
	})
	k.Drop("done")
	readers.Wait()
}

// benchFrame is a "set" event of size bytes on the wire.
func benchFrame(b *testing.B, size int) *streams.Frame {
	empty, err := streams.EncodeFrame("1733237000000-0", "set", nil, []byte{})
	if err != nil {
		b.Fatal(err)
	}
	f, err := streams.EncodeFrame("1733237000000-0", "set", nil, bytes.Repeat([]byte("x"), size-len(empty.Bytes)))
	if err != nil || len(f.Bytes) != size {
		b.Fatalf("frame of %d bytes: %v", size, err)
	}
	return f
}
