package streams

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Event ids are "<epoch>-<seq>". The epoch is fixed for the life of the
// process, so an id from another process (or a restarted one) is recognised
// as foreign; seq comes from one process-wide counter, so an id of one topic
// is never mistaken for a position in another.
type ids struct {
	epoch string
	seq   atomic.Uint64
}

func newIDs() *ids {
	return &ids{epoch: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

func (g *ids) next() (uint64, string) {
	n := g.seq.Add(1)
	return n, g.format(n)
}

// issued is the newest position handed out; no id beyond it is genuine.
func (g *ids) issued() uint64 { return g.seq.Load() }

func (g *ids) format(n uint64) string {
	return g.epoch + "-" + strconv.FormatUint(n, 10)
}

// parse returns the sequence number of an id of this process.
func (g *ids) parse(id string) (uint64, bool) {
	epoch, seq, ok := strings.Cut(id, "-")
	if !ok || epoch != g.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// Reset reasons, sent in the data of a "reset" event.
const (
	ResetUnknownID = "unknown-id"   // not an id of this process
	ResetExpiredID = "expired-id"   // ours, but no longer in the replay buffer
	ResetGap       = "upstream-gap" // the Redis connection was re-established
	ResetOverflow  = "overflow"     // the stream's pipeline fell behind Redis and dropped events
	// ResetNotifyConfig: notify-keyspace-events lost flags Keyflux needs
	// (someone ran CONFIG SET): keyspace events were missed until restored.
	ResetNotifyConfig = "notify-config"
)
