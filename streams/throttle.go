package streams

import (
	"container/heap"
	"time"

	"github.com/reactivex/rxgo/v2"
)

// throttle passes the first event of each key at once, then holds the
// latest one until the key's interval ends and sends it: at most one event
// per key per interval, and the final state is never lost.
func throttle(every time.Duration, in <-chan rxgo.Item, out chan<- rxgo.Item) {
	windows := map[string]*window{}
	var due windowHeap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	rearm := func() {
		timer.Stop()
		if len(due) > 0 {
			timer.Reset(time.Until(due[0].until))
		}
	}
	for {
		select {
		case item, ok := <-in:
			if !ok {
				return
			}
			ev, isEvent := item.V.(Event)
			if !isEvent || ev.Kind != Data {
				if isEvent && ev.Kind == Gap { // what is held happened before the gap
					for _, w := range due {
						if w.pending != nil {
							out <- *w.pending
							w.pending = nil
						}
					}
				}
				out <- item
				continue
			}
			if w := windows[ev.Key]; w != nil {
				w.pending = &item
				continue
			}
			out <- item
			w := &window{key: ev.Key, until: time.Now().Add(every)}
			windows[ev.Key] = w
			heap.Push(&due, w)
			if due[0] == w {
				rearm()
			}
		case <-timer.C:
			now := time.Now()
			for len(due) > 0 && !due[0].until.After(now) {
				w := due[0]
				if w.pending == nil {
					heap.Pop(&due)
					delete(windows, w.key)
					continue
				}
				out <- *w.pending // trailing: the latest, then a new window
				w.pending = nil
				w.until = now.Add(every)
				heap.Fix(&due, 0)
			}
			rearm()
		}
	}
}

// window is one key's throttle interval and the event it holds.
type window struct {
	key     string
	until   time.Time
	pending *rxgo.Item
	index   int
}

type windowHeap []*window

func (h windowHeap) Len() int           { return len(h) }
func (h windowHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h windowHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *windowHeap) Push(x any) {
	w := x.(*window)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *windowHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}
