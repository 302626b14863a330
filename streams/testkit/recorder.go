package testkit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyflux/keyflux/streams"
)

// Recorder is a streams.Receiver that keeps what the hub sends it.
type Recorder struct {
	mu     sync.Mutex
	frames []*streams.Frame
	got    chan struct{}
	// Refuse makes Send report the receiver gone.
	Refuse atomic.Bool
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{got: make(chan struct{}, 1<<16)} }

// Send implements streams.Receiver.
func (r *Recorder) Send(f *streams.Frame) bool {
	if r.Refuse.Load() {
		return false
	}
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	r.got <- struct{}{}
	return true
}

// Wait returns the first n frames once they have arrived, failing the test
// after 5 s.
func (r *Recorder) Wait(t testing.TB, n int) []*streams.Frame {
	t.Helper()
	for {
		r.mu.Lock()
		if len(r.frames) >= n {
			fs := append([]*streams.Frame(nil), r.frames[:n]...)
			r.mu.Unlock()
			return fs
		}
		r.mu.Unlock()
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("waited for %d frames, have %d", n, r.Count())
		}
	}
}

// Count is how many frames arrived.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

// EventNames are the event names of frames, in order.
func EventNames(fs []*streams.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, Field(f.Bytes, "event"))
	}
	return out
}
