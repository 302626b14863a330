package streams

import (
	"time"

	"github.com/reactivex/rxgo/v2"
)

// BatchItem is one event inside a "batch" event's data.
type BatchItem struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
}

// buffer gathers events into one "batch" event, sent when count events are
// in it or every after its first event, whichever comes first (either
// limit may be zero). A gap or the end of the stream flushes what is held,
// so nothing is silently lost.
func buffer(every time.Duration, count int, in <-chan rxgo.Item, out chan<- rxgo.Item) {
	var batch []BatchItem
	var key string
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) > 0 {
			out <- rxgo.Of(Event{Name: "batch", Key: key, Data: batch})
			batch, key = nil, ""
		}
	}
	for {
		select {
		case item, ok := <-in:
			if !ok {
				flush()
				return
			}
			ev, isEvent := item.V.(Event)
			if !isEvent || ev.Kind != Data {
				if isEvent && ev.Kind == Gap {
					flush()
				}
				out <- item
				continue
			}
			data := ev.Data
			if ev.Raw != nil {
				data = string(ev.Raw)
			}
			batch = append(batch, BatchItem{Event: ev.Name, Data: data})
			key = ev.Key
			if count > 0 && len(batch) >= count {
				flush()
			} else if len(batch) == 1 && every > 0 {
				timer.Reset(every)
			}
		case <-timer.C:
			flush()
		}
	}
}
