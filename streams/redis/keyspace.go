package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// Keyspace turns Redis keyspace notifications into streams.
type Keyspace struct {
	Upstreams *Upstreams
	// Cluster, when set, subscribes on every master of a Redis Cluster
	// instead of Upstreams.
	Cluster *ClusterUpstreams
	Notify  *NotifyConfig // re-applied after every (re)subscription; may be nil
	Metrics *Metrics
	// Buffer is how many notifications may wait for the pipeline before
	// the stream drops them and resets its subscribers.
	Buffer int
	// Values reads keys for streams with values=true. It must read from
	// Redis, not from a client-side cache: the notification arrives on
	// another connection than the cache's invalidation, so a cached copy
	// could still be the value from before the event.
	Values *Values
	// Journals, when set, serve keyspace streams from their database's
	// journal (not on a cluster).
	Journals *Journals
}

// Stream returns the spec of the stream q selects.
func (k *Keyspace) Stream(q streams.KeyspaceQuery) streams.Spec {
	spec := &keyspaceSpec{k: k, q: q}
	if k.Journals != nil && k.Cluster == nil {
		return k.journaled(q, spec)
	}
	return spec
}

type keyspaceSpec struct {
	k *Keyspace
	q streams.KeyspaceQuery
}

func (s *keyspaceSpec) Source() string { return "keyspace" }

func (s *keyspaceSpec) Key() string {
	key := "keyspace db=" + strconv.Itoa(s.q.DB) + " events=" + strings.Join(s.q.Events, ",")
	if s.q.Values {
		key += " values"
	}
	return key + " pattern=" + s.q.Pattern
}

func (s *keyspaceSpec) Describe() map[string]any {
	events := s.q.Events
	if events == nil {
		events = []string{}
	}
	d := map[string]any{"stream": "keyspace", "db": s.q.DB, "pattern": s.q.Pattern, "events": events,
		"values": s.q.Values}
	if s.k.Notify != nil {
		if p := s.k.Notify.Problem(); p != "" {
			d["warning"] = p // the stream is open, but Redis may send it nothing
		}
	}
	return d
}

func (s *keyspaceSpec) prefix() string {
	return "__keyspace@" + strconv.Itoa(s.q.DB) + "__:"
}

// Open subscribes with PSUBSCRIBE __keyspace@<db>__:<pattern>, letting Redis
// match the glob (past Upstreams.MaxPatterns, the database's root pattern
// and a local match), and filters event names once for every subscriber.
func (s *keyspaceSpec) Open(ctx context.Context) rxgo.Observable {
	p := newPump(s.k.Buffer, orUnregistered(s.k.Metrics).Dropped)
	prefix := s.prefix()
	db := s.q.DB
	// Past the pattern budget, the database's streams share its root.
	target := Target{Name: prefix + s.q.Pattern, Pattern: true, Cover: prefix + "*"}
	untrack := func() {}
	if s.k.Notify != nil {
		// Flags first, so that "connected" and "reset" promise events
		// Redis will really send (a restarted Redis forgets them).
		target.Resync = s.k.Notify.Ensure
		untrack = s.k.Notify.track(p) // reset when the flags were off
	}
	onMessage := func(node string, m rueidis.PubSubMessage) {
		key, _ := strings.CutPrefix(m.Channel, prefix)
		if strings.HasPrefix(key, probePrefix) {
			return // Keyflux's own check that notifications arrive
		}
		p.offer(streams.Event{Name: m.Message, Key: key, Data: streams.KeyspaceEvent{
			Key: key, Event: m.Message, DB: db, TS: time.Now().UnixMilli(), Node: node,
		}})
	}
	onState := func(k streams.Kind, reason string) { p.offer(streams.Event{Kind: k, Reason: reason}) }
	var leave func()
	if s.k.Cluster != nil {
		leave = s.k.Cluster.Join(target, &NodeListener{OnMessage: onMessage, OnState: onState})
	} else {
		leave = s.k.Upstreams.Join(target, &Listener{
			OnMessage: func(m rueidis.PubSubMessage) { onMessage("", m) },
			OnState:   onState,
		})
	}
	go func() {
		<-ctx.Done()
		untrack()
		leave()
		p.close()
	}()
	obs := p.observable()
	if len(s.q.Events) > 0 {
		obs = obs.Filter(func(i any) bool {
			ev := i.(streams.Event)
			_, found := slices.BinarySearch(s.q.Events, ev.Name)
			return ev.Kind != streams.Data || found
		})
	}
	if s.q.Values && s.k.Values != nil {
		// One read per event per stream, in order, after the filter.
		obs = obs.Map(func(_ context.Context, i any) (any, error) {
			ev := i.(streams.Event)
			if ev.Kind == streams.Data {
				ev.Data = s.k.withValue(ctx, ev.Data.(streams.KeyspaceEvent))
			}
			return ev, nil
		})
	}
	return obs
}

// withValue adds the key's current type and value to e. A value that
// cannot be read is left out; the event still goes.
func (k *Keyspace) withValue(ctx context.Context, e streams.KeyspaceEvent) streams.KeyspaceEvent {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := k.Values.Read(ctx, e.Key)
	if err != nil {
		return e
	}
	e.Type, e.Value = st.Type, st.Value
	return e
}
