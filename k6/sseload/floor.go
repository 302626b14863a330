package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"syscall"
)

// floorServer is -mode floor-server: the least any SSE server can do per
// delivery. Every GET gets an SSE response head and is then only written
// to; every POST /pub hands its body to one writer thread, which writes
// "data: <body>\n\n" to each stream with one write(2). Run as a child
// process, its /proc/<pid> is the kernel's cost plus almost nothing.
type floorServer struct {
	mu     sync.Mutex
	socks  []floorSock // copied on change: the writer reads a snapshot
	frames chan []byte
}

type floorSock struct {
	conn net.Conn
	fd   int
}

const floorHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

func runFloorServer(ctx context.Context, cfg benchConfig, out, log io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	f := &floorServer{frames: make(chan []byte, 4096)}
	srv := &http.Server{Handler: f}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		f.write(stop)
	}()
	fmt.Fprintf(out, "floor-server listening url=http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(ln)
	close(stop) // not frames: a POST still being served may send on it
	<-done
	f.mu.Lock()
	for _, s := range f.socks {
		s.conn.Close()
	}
	f.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
			fmt.Fprintln(log, "floor-server:", ctx.Err())
		}
		return nil
	}
	return err
}

// ServeHTTP takes a GET over as a stream and queues a POST's body.
func (f *floorServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxEventSize))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		frame := make([]byte, 0, len(body)+8)
		frame = append(append(append(frame, "data: "...), body...), "\n\n"...)
		select {
		case f.frames <- frame:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	case http.MethodGet:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := io.WriteString(conn, floorHead); err != nil {
			conn.Close()
			return
		}
		fd, err := rawFD(conn)
		if err != nil {
			conn.Close()
			return
		}
		f.mu.Lock()
		f.socks = append(f.socks[:len(f.socks):len(f.socks)], floorSock{conn: conn, fd: fd})
		f.mu.Unlock()
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
	}
}

// rawFD is the socket's descriptor; the conn stays open (and owns it).
func rawFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := raw.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}

// write is the one writer: a locked thread, one write(2) per stream per
// frame. A full socket (EAGAIN, a short write) finishes through the
// runtime's poller; a gone client is closed and dropped.
func (f *floorServer) write(stop <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		var frame []byte
		select {
		case frame = <-f.frames:
		case <-stop:
			return
		}
		f.mu.Lock()
		socks := f.socks
		f.mu.Unlock()
		var gone []net.Conn
		for _, s := range socks {
			n, err := syscall.Write(s.fd, frame)
			if err == nil && n == len(frame) {
				continue
			}
			if err == syscall.EAGAIN || (err == nil && n < len(frame)) {
				if _, err = s.conn.Write(frame[max(n, 0):]); err == nil {
					continue
				}
			}
			gone = append(gone, s.conn)
		}
		if len(gone) > 0 {
			f.drop(gone)
		}
	}
}

// drop forgets and closes the streams whose writes failed.
func (f *floorServer) drop(gone []net.Conn) {
	dead := map[net.Conn]bool{}
	for _, c := range gone {
		dead[c] = true
		c.Close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := make([]floorSock, 0, len(f.socks))
	for _, s := range f.socks {
		if !dead[s.conn] {
			kept = append(kept, s)
		}
	}
	f.socks = kept
}
