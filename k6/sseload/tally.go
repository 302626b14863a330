package main

import (
	"sync"
	"time"
)

// tally counts the outcome of opening streams, shared by the workers of
// the modes that open many (connect, amplification).
type tally struct {
	mu        sync.Mutex
	connected int
	refused   map[int]int // by HTTP status
	refusal   error       // the first refusal, to say why
	errs      []error     // neither connected nor refused
	sum       time.Duration
	took      histogram // each open, from the dial
}

func newTally() *tally { return &tally{refused: map[int]int{}} }

func (t *tally) record(took time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch code := refusedStatus(err); {
	case err == nil:
		t.connected++
		t.sum += took
		t.took.record(took)
	case code != 0:
		t.refused[code]++
		if t.refusal == nil {
			t.refusal = err
		}
	default:
		t.errs = append(t.errs, err)
	}
}

func (t *tally) counts() (connected, refused, failed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.refused {
		refused += n
	}
	return t.connected, refused, len(t.errs)
}
