//go:build linux

package sse

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangups notices clients that close their connection the moment they do,
// with one epoll instance and one goroutine for every stream: a hijacked
// connection has no goroutine reading it, and fasthttp gives no signal.
type hangups struct {
	epfd, wake int
	done       chan struct{}

	mu      sync.Mutex
	clients map[uint32]*client
	next    uint32
	closing sync.Once // a second close must not close descriptors reused since
}

func newHangups() *hangups {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil // the heartbeat still finds vanished clients
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil
	}
	w := &hangups{epfd: epfd, wake: wake, done: make(chan struct{}), clients: make(map[uint32]*client)}
	go w.loop()
	return w
}

// watch registers c's socket; 0 means it is not watched.
func (w *hangups) watch(c *client) uint32 {
	if w == nil || c.raw == nil {
		return 0
	}
	w.mu.Lock()
	w.next++
	if w.next == 0 { // 0 is the wake-up event
		w.next++
	}
	id := w.next
	w.clients[id] = c
	w.mu.Unlock()
	var err error
	ctlErr := c.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(id)}
		err = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || ctlErr != nil {
		w.mu.Lock()
		delete(w.clients, id)
		w.mu.Unlock()
		return 0
	}
	return id
}

// forget unregisters a socket; it must run before the socket is closed.
func (w *hangups) forget(c *client, id uint32) {
	if w == nil || id == 0 {
		return
	}
	w.mu.Lock()
	delete(w.clients, id)
	w.mu.Unlock()
	_ = c.raw.Control(func(fd uintptr) {
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

func (w *hangups) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint32(ev.Fd)
			if id == 0 {
				return // close asked us to stop
			}
			w.mu.Lock()
			c := w.clients[id]
			delete(w.clients, id) // one-shot: it will not fire again
			w.mu.Unlock()
			if c != nil {
				c.close("client went away")
			}
		}
	}
}

func (w *hangups) close() {
	if w == nil {
		return
	}
	w.closing.Do(func() {
		_, _ = unix.Write(w.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-w.done
		unix.Close(w.wake)
		unix.Close(w.epfd)
	})
}
