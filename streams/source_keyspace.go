package streams

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// KeyspaceQuery selects keyspace notifications: keys matching Pattern (a
// Redis glob) in database DB, optionally only the named events.
type KeyspaceQuery struct {
	DB      int
	Pattern string
	Events  []string // sorted, without duplicates; empty means all
}

// Keyspace turns Redis keyspace notifications into streams.
type Keyspace struct {
	Client  rueidis.Client
	Notify  *NotifyConfig // re-applied after a reconnect; may be nil
	Metrics *Metrics
	Logger  *slog.Logger
	// Buffer is how many notifications may wait for the pipeline before
	// the stream drops them and resets its subscribers.
	Buffer int
}

// Stream returns the spec of the stream q selects.
func (k *Keyspace) Stream(q KeyspaceQuery) Spec {
	return &keyspaceSpec{k: k, q: q}
}

type keyspaceSpec struct {
	k *Keyspace
	q KeyspaceQuery
}

func (s *keyspaceSpec) Source() string { return "keyspace" }

func (s *keyspaceSpec) Key() string {
	return "keyspace db=" + strconv.Itoa(s.q.DB) + " events=" + strings.Join(s.q.Events, ",") +
		" pattern=" + s.q.Pattern
}

func (s *keyspaceSpec) Describe() map[string]any {
	events := s.q.Events
	if events == nil {
		events = []string{}
	}
	return map[string]any{"stream": "keyspace", "db": s.q.DB, "pattern": s.q.Pattern, "events": events}
}

func (s *keyspaceSpec) prefix() string {
	return "__keyspace@" + strconv.Itoa(s.q.DB) + "__:"
}

// Open subscribes with PSUBSCRIBE __keyspace@<db>__:<pattern>, letting Redis
// match the glob, and filters event names once for every subscriber.
func (s *keyspaceSpec) Open(ctx context.Context) rxgo.Observable {
	p := newPump(s.k.buffer(), s.k.metrics().Dropped)
	go s.receive(ctx, p)
	obs := p.observable()
	if len(s.q.Events) > 0 {
		obs = obs.Filter(func(i any) bool {
			ev := i.(Event)
			_, found := slices.BinarySearch(s.q.Events, ev.Name)
			return ev.Kind != Data || found
		})
	}
	return obs
}

// receive holds the subscription until ctx ends. rueidis re-subscribes by
// itself after a reconnect; every confirmation after the first one means
// notifications may have been missed, so it re-applies the keyspace flags
// (a restarted Redis forgets them) and then announces the gap.
func (s *keyspaceSpec) receive(ctx context.Context, p *pump) {
	var helpers sync.WaitGroup
	defer func() {
		helpers.Wait()
		p.close()
	}()
	prefix := s.prefix()
	log := s.k.logger()
	var confirmed atomic.Int64
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(sub rueidis.PubSubSubscription) {
		if sub.Kind != "psubscribe" {
			return
		}
		first := confirmed.Add(1) == 1
		helpers.Add(1)
		go func() { // the hook runs on the connection's reader: never block it
			defer helpers.Done()
			// Flags first, so that "connected" or "reset" promise events
			// that Redis will really send.
			if s.k.Notify != nil {
				if err := s.k.Notify.Ensure(ctx); err != nil && ctx.Err() == nil {
					log.Warn("keyspace flags not applied", "err", err)
				}
			}
			if first {
				p.offer(Event{Kind: Ready})
			} else {
				p.offer(Event{Kind: Gap, Reason: "Redis connection was re-established"})
			}
		}()
	})
	cmd := s.k.Client.B().Psubscribe().Pattern(prefix + s.q.Pattern).Build()
	var wait backoff
	for {
		err := s.k.Client.Receive(hooked, cmd, func(m rueidis.PubSubMessage) {
			key, _ := strings.CutPrefix(m.Channel, prefix)
			p.offer(Event{Name: m.Message, Data: KeyspaceEvent{
				Key: key, Event: m.Message, DB: s.q.DB, TS: time.Now().UnixMilli(),
			}})
		})
		if ctx.Err() != nil {
			return
		}
		log.Warn("keyspace subscription lost; retrying", "pattern", s.q.Pattern, "err", err)
		if !wait.wait(ctx) {
			return
		}
	}
}

func (k *Keyspace) buffer() int {
	if k.Buffer > 0 {
		return k.Buffer
	}
	return 4096
}

func (k *Keyspace) metrics() *Metrics {
	if k.Metrics == nil {
		return unregistered
	}
	return k.Metrics
}

func (k *Keyspace) logger() *slog.Logger {
	if k.Logger != nil {
		return k.Logger
	}
	return slog.Default()
}
