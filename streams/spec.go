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
