package streams

import (
	"context"

	"github.com/reactivex/rxgo/v2"
)

// Spec is one distinct, normalised stream: a source plus its parameters and
// operators. Clients whose specs have the same Key share one topic, so one
// Redis subscription and one pipeline serve them all.
type Spec interface {
	// Key identifies the stream; equal keys mean equal streams.
	Key() string
	// Source names the kind of source, for metrics ("keyspace", ...).
	Source() string
	// Open starts the upstream and returns its pipeline. It is called once
	// per topic; cancelling ctx must release the upstream and complete the
	// Observable. The first item must be a Ready event once the upstream is live.
	Open(ctx context.Context) rxgo.Observable
	// Describe is the data of the "connected" event.
	Describe() map[string]any
}

// Healer is implemented by specs whose stream is the state of something (a
// key's value) rather than a log of events. Such a stream can always heal: a
// subscriber the replay ring cannot vouch for (a new one, or one resuming
// from an unknown or expired id) gets the current state instead of a
// "reset", and needs nothing else to be up to date. So the hub keeps only
// the newest frame of such a topic: enough to tell a subscriber that missed
// nothing or one change from one that missed more, who gets one snapshot
// instead of every intermediate value.
type Healer interface {
	Spec
	// Heal returns the event (a "snapshot", sent without an id) that
	// brings one subscriber up to date, and false when there is no state
	// to give. It is called with the topic locked, so it must not block.
	// The source must update the state Heal reports before it emits the
	// event announcing the change, so that a subscriber healed in between
	// gets the change twice, never not at all.
	Heal() (Event, bool)
}

// Durable is a Spec whose events carry ids of the source's own (Event.ID):
// ordered, and valid across processes and restarts, like Redis Stream entry
// ids. Its subscribers resume from the source's history instead of the
// hub's replay ring, so a client that reconnects after a restart, or to
// another process, loses nothing and sees nothing twice.
//
// A joining subscriber is held in a catching-up state: Replay reads its
// history up to the topic's head while live events wait in a bounded
// per-subscriber buffer; then the buffer is flushed, skipping what the
// subscriber already has. If the buffer overflows it is dropped and the
// history is read again up to the new head, so the seam is exact however
// fast the stream grows.
type Durable interface {
	Spec
	// Replay emits what a subscriber must see before the live events, in
	// order: a Ready whose ID, when set, is the subscriber's starting
	// position (the id of its "connected" event, so that a reconnect
	// before any event resumes there); a Gap when the history after
	// lastID is not whole (Code ResetExpiredID or ResetUnknownID, ID the
	// first id still available); then the Data events after its position
	// up to and including head, the newest id the topic has published,
	// among them any reset entry of the history (a Gap with Code ResetGap
	// and its own ID, sent as a "reset" with that id, as it is live).
	// lastID is the client's Last-Event-ID, "" for none, in which case the
	// spec's own parameters choose where to start. Replay stops when emit
	// returns false, and returns the id of the last event the subscriber
	// has, "" if it got no position yet (also on error).
	Replay(ctx context.Context, lastID, head string, emit func(Event) bool) (string, error)
	// CompareIDs orders two ids of the stream, like strings.Compare.
	CompareIDs(a, b string) int
}
