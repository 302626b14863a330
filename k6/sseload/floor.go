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
	"time"
)

// floorServer is -mode floor-server: the least any SSE server can do per
// delivery. Every GET gets an SSE response head and is then only written
// to; every POST /pub hands its body to one writer thread, which writes
// "data: <body>\n\n" to each stream with one write(2). Run as a child
// process, its /proc/<pid> is the kernel's cost plus almost nothing.
//
// With batch > 1 the writer gathers that many frames and writes them
// together: the cheapest way to carry several events a write, and so the
// least latency any server pays for it (each frame waits for the last of
// its batch).
type floorServer struct {
	mu        sync.Mutex
	socks     []floorSock // copied on change: the writer reads a snapshot
	frames    chan []byte
	batch     int
	batchIdle time.Duration
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
	f := &floorServer{frames: make(chan []byte, 4096), batch: cfg.Batch, batchIdle: cfg.BatchIdle}
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
		fd, err := rawFD(conn)
		if err != nil {
			conn.Close()
			return
		}
		// The head goes under mu, so the writer's next snapshot has the
		// stream and no frame precedes the head: a client that has the
		// head gets every event published after it.
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, err := io.WriteString(conn, floorHead); err != nil {
			conn.Close()
			return
		}
		f.socks = append(f.socks[:len(f.socks):len(f.socks)], floorSock{conn: conn, fd: fd})
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
// batch of frames. A full socket (EAGAIN, a short write) finishes through
// the runtime's poller; a gone client is closed and dropped.
func (f *floorServer) write(stop <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var batch []byte
	n := 0
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	for {
		select {
		case frame := <-f.frames:
			batch = append(batch, frame...)
			if n++; n < f.batch {
				idle.Reset(f.batchIdle)
				continue
			}
		case <-idle.C:
			if n == 0 {
				continue
			}
		case <-stop:
			return
		}
		idle.Stop()
		f.writeAll(batch)
		batch, n = batch[:0], 0
	}
}

// writeAll writes b to every stream.
func (f *floorServer) writeAll(b []byte) {
	f.mu.Lock()
	socks := f.socks
	f.mu.Unlock()
	var gone []net.Conn
	for _, s := range socks {
		n, err := syscall.Write(s.fd, b)
		if err == nil && n == len(b) {
			continue
		}
		if err == syscall.EAGAIN || (err == nil && n < len(b)) {
			if _, err = s.conn.Write(b[max(n, 0):]); err == nil {
				continue
			}
		}
		gone = append(gone, s.conn)
	}
	if len(gone) > 0 {
		f.drop(gone)
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
