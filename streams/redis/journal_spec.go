package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// journaled is a keyspace or channel stream read from its journal: a
// Durable spec, whose event ids are the journal's entry ids, the same on
// every Keyflux process and across restarts. Its key, source and
// description are those of the stream without a journal (Spec).
type journaled struct {
	streams.Spec
	js     *Journals
	key    string // the journal's key
	target Target // what the journal subscribes to
	// event turns an entry into the stream's event; false when the stream
	// does not carry it (another key's event, a filtered event name).
	event func(journalEntry) (streams.Event, bool)
	// values, when set, completes an event at delivery (keyspace values=true).
	values func(context.Context, streams.Event) streams.Event
	buffer int
	m      *Metrics
}

// Open joins the journal's reader: the Ready event carries the position
// the stream starts after, then come the entries it carries.
func (s *journaled) Open(ctx context.Context) rxgo.Observable {
	p := newPump(s.buffer, orUnregistered(s.m).Dropped)
	j := s.js.acquire(s.key, s.target)
	stop := j.listen(&journalListener{
		ready: func(at string) { p.offer(streams.Event{Kind: streams.Ready, ID: at}) },
		entry: func(e journalEntry) {
			if ev, ok := s.event(e); ok {
				p.offer(ev)
			}
		},
	})
	go func() {
		<-ctx.Done()
		stop()
		s.js.release(j)
		p.close()
	}()
	obs := p.observable()
	if s.values != nil {
		obs = obs.Map(func(_ context.Context, i any) (any, error) {
			ev := i.(streams.Event)
			if ev.Kind == streams.Data {
				ev = s.values(ctx, ev)
			}
			return ev, nil
		})
	}
	return obs
}

func (s *journaled) CompareIDs(a, b string) int {
	x, okA := streams.ParseEntryID(a)
	y, okB := streams.ParseEntryID(b)
	if !okA || !okB {
		return strings.Compare(a, b)
	}
	return x.Compare(y)
}

// Replay implements Durable: the journal's entries after lastID up to head
// that the stream carries. An id the journal never issued gets a reset
// unknown-id; one older than what the journal still holds, expired-id.
func (s *journaled) Replay(ctx context.Context, lastID, head string, emit func(streams.Event) bool) (string, error) {
	if lastID == "" {
		if !emit(streams.Event{Kind: streams.Ready, ID: head}) {
			return "", nil
		}
		return head, nil
	}
	after, replay, pos, err := resumeAt(ctx, s.js.Client, s.key, lastID, head, emit)
	if !replay {
		return pos, err
	}
	return replayRange(ctx, s.js.Client, s.key, journalReadCount, after, head, func(e rueidis.XRangeSlice) (streams.Event, bool) {
		ev, ok := s.event(parseEntry(e))
		if ok && s.values != nil && ev.Kind == streams.Data {
			ev = s.values(ctx, ev)
		}
		return ev, ok
	}, emit)
}

// resetEvent is a journal's reset entry as an event: a Gap with the
// entry's id, so a client that got it does not get it again.
func resetEvent(e journalEntry) streams.Event {
	return streams.Event{Kind: streams.Gap, ID: e.id, Code: e.reset,
		Reason: "the journal's writer changed or lost its subscription; events may be missing here"}
}

// entryMillis is when the writer appended the entry (Redis's clock).
func entryMillis(id string) int64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// journaled returns the keyspace stream q read from its database's journal.
func (k *Keyspace) journaled(q streams.KeyspaceQuery, spec streams.Spec) streams.Spec {
	prefix := "__keyspace@" + strconv.Itoa(q.DB) + "__:"
	target := Target{Name: prefix + "*", Pattern: true}
	if k.Notify != nil {
		target.Resync = k.Notify.Ensure
	}
	s := &journaled{Spec: spec, js: k.Journals, key: KeyspaceJournal(q.DB), target: target,
		buffer: k.Buffer, m: k.Metrics}
	s.event = func(e journalEntry) (streams.Event, bool) {
		if e.reset != "" {
			return resetEvent(e), true
		}
		key, name := e.msg.a, e.msg.b
		if !Match(q.Pattern, key) {
			return streams.Event{}, false
		}
		if len(q.Events) > 0 && !slices.Contains(q.Events, name) {
			return streams.Event{}, false
		}
		return streams.Event{ID: e.id, Name: name, Key: key, Data: streams.KeyspaceEvent{
			Key: key, Event: name, DB: q.DB, TS: entryMillis(e.id)}}, true
	}
	if q.Values && k.Values != nil {
		s.values = func(ctx context.Context, ev streams.Event) streams.Event {
			ev.Data = k.withValue(ctx, ev.Data.(streams.KeyspaceEvent))
			return ev
		}
	}
	return s
}

// journaled returns the channel stream q read from its journal.
func (c *Channels) journaled(q streams.ChannelQuery, spec streams.Spec) streams.Spec {
	s := &journaled{Spec: spec, js: c.Journals, key: ChannelJournal(q.Name, q.Pattern),
		target: Target{Name: q.Name, Pattern: q.Pattern}, buffer: c.Buffer, m: c.Metrics}
	b64 := q.Base64
	s.event = func(e journalEntry) (streams.Event, bool) {
		if e.reset != "" {
			return resetEvent(e), true
		}
		ev := messageEvent([]byte(e.msg.b), b64)
		ev.ID = e.id
		return ev, true
	}
	return s
}
