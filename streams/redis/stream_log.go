package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// StreamLogs tails Redis Streams. Unlike pub/sub they are exact: every event id
// is the Redis entry id, so a client resumes after its Last-Event-ID from
// Redis itself, after a Keyflux restart or on another Keyflux process,
// with nothing lost and nothing repeated.
type StreamLogs struct {
	Client rueidis.Client
	Logger *slog.Logger
	// Block bounds one XREAD call, so that a silently dead connection is
	// noticed; 0 means 10 s.
	Block time.Duration

	readers atomic.Int64
}

// Readers returns how many blocking XREAD loops are running (one per
// stream key with clients or lingering).
func (l *StreamLogs) Readers() int { return int(l.readers.Load()) }

// Stream returns the spec of the stream q selects.
func (l *StreamLogs) Stream(q streams.StreamLogQuery) streams.Spec { return &streamLogSpec{l: l, q: q} }

// Check fails with ErrNotStream when key exists and is not a stream, so a
// client asking for one gets a clear error instead of a silent stream.
func (l *StreamLogs) Check(ctx context.Context, key string) error {
	typ, err := l.Client.Do(ctx, l.Client.B().Type().Key(key).Build()).ToString()
	if err != nil {
		return err
	}
	if typ != "none" && typ != "stream" {
		return fmt.Errorf("key %q holds a %s: %w", key, typ, streams.ErrNotStream)
	}
	return nil
}

// Append adds an entry (fields as name, value pairs, in order) and returns
// its id. maxLen > 0 trims the stream to that many entries (exactly: a
// client resuming from a trimmed id gets a reset, so trimming must be
// predictable).
func (l *StreamLogs) Append(ctx context.Context, key string, fields []string, maxLen int64) (string, error) {
	args := make([]string, 0, len(fields)+3)
	if maxLen > 0 {
		args = append(args, "MAXLEN", strconv.FormatInt(maxLen, 10))
	}
	args = append(args, "*")
	args = append(args, fields...)
	id, err := l.Client.Do(ctx, l.Client.B().Arbitrary("XADD").Keys(key).Args(args...).Build()).ToString()
	if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return "", fmt.Errorf("key %q: %w", key, streams.ErrNotStream)
	}
	return id, err
}

type streamLogSpec struct {
	l *StreamLogs
	q streams.StreamLogQuery
}

func (s *streamLogSpec) Source() string { return "log" }

// Key is the stream key alone: clients with different starting points share
// one XREAD loop.
func (s *streamLogSpec) Key() string { return "log key=" + s.q.Key }

func (s *streamLogSpec) Describe() map[string]any {
	d := map[string]any{"stream": "log", "key": s.q.Key}
	if s.q.From != "" {
		d["from"] = s.q.From
	}
	if s.q.Backlog > 0 {
		d["backlog"] = s.q.Backlog
	}
	return d
}

func (s *streamLogSpec) CompareIDs(a, b string) int {
	x, okA := streams.ParseEntryID(a)
	y, okB := streams.ParseEntryID(b)
	if !okA || !okB {
		return strings.Compare(a, b)
	}
	return x.Compare(y)
}

const readCount = 512

// Open runs the topic's XREAD loop. A blocking XREAD on rueidis's shared
// client goes to a connection of its blocking pool, never to the pipeline
// other commands share; cancelling ctx closes that connection, which
// releases the reader in Redis at once. The loop starts after the newest
// entry and, after an error, resumes from the last entry it read, so a
// lost connection costs nothing.
func (s *streamLogSpec) Open(ctx context.Context) rxgo.Observable {
	out := make(chan rxgo.Item)
	l := s.l
	logger := l.logger()
	block := l.Block
	if block <= 0 {
		block = 10 * time.Second
	}
	l.readers.Add(1)
	go func() {
		defer l.readers.Add(-1)
		defer close(out)
		var wait streams.Backoff
		var last string
		for {
			id, err := s.newest(ctx, "+")
			if err == nil {
				last = id.String()
				break
			}
			if ctx.Err() != nil {
				return
			}
			logger.Warn("reading stream failed; retrying", "key", s.q.Key, "err", err)
			if !wait.Wait(ctx) {
				return
			}
		}
		if !send(ctx, out, streams.Event{Kind: streams.Ready, ID: last}) {
			return
		}
		c := l.Client
		for {
			cmd := c.B().Xread().Count(readCount).Block(block.Milliseconds()).Streams().Key(s.q.Key).Id(last).Build()
			res, err := c.Do(ctx, cmd).AsXReadSlices()
			if ctx.Err() != nil {
				return
			}
			if err != nil && !rueidis.IsRedisNil(err) { // nil: the block timed out
				logger.Warn("tailing stream failed; retrying", "key", s.q.Key, "err", err)
				if !wait.Wait(ctx) {
					return
				}
				continue
			}
			wait.Reset()
			for _, e := range res[s.q.Key] {
				if !send(ctx, out, entryEvent(e)) {
					return
				}
				last = e.ID
			}
		}
	}()
	return rxgo.FromChannel(out)
}

// Replay implements Durable: see there for what it emits.
func (s *streamLogSpec) Replay(ctx context.Context, lastID, head string, emit func(streams.Event) bool) (string, error) {
	c := s.l.Client
	var after streams.EntryID
	switch {
	case lastID != "":
		var ok bool
		var pos string
		var err error
		if after, ok, pos, err = resumeAt(ctx, c, s.q.Key, lastID, head, emit); !ok {
			return pos, err
		}
	case s.q.Backlog > 0:
		if !emit(streams.Event{Kind: streams.Ready}) {
			return "", nil
		}
		return s.backlog(ctx, head, emit)
	case s.q.From != "":
		from, _ := streams.ParseEntryID(s.q.From)
		if !emit(streams.Event{Kind: streams.Ready}) {
			return "", nil
		}
		after = from.Prev()
	default:
		if !emit(streams.Event{Kind: streams.Ready, ID: head}) {
			return "", nil
		}
		return head, nil
	}
	return replayRange(ctx, c, s.q.Key, readCount, after, head, func(e rueidis.XRangeSlice) (streams.Event, bool) {
		return entryEvent(e), true
	}, emit)
}

// resumeAt starts a Durable replay for a client's lastID: it emits Ready,
// and a Gap when the stream never issued lastID (unknown-id: nothing to
// replay) or may have lost entries after it (expired-id). replay says
// whether to go on after the returned id; if not, Replay returns pos (""
// when emit refused, head for an unknown id) and err. An id past head but
// issued is fine: the client comes from a process further ahead.
func resumeAt(ctx context.Context, c rueidis.Client, key, lastID, head string, emit func(streams.Event) bool) (after streams.EntryID, replay bool, pos string, err error) {
	id, valid := streams.ParseEntryID(lastID)
	info, err := readStreamInfo(ctx, c, key)
	if err != nil {
		return id, false, "", err
	}
	switch {
	case !valid || info.lastGenerated.Compare(id) < 0: // not an id of this stream
		if !emit(streams.Event{Kind: streams.Ready, ID: head}) || !emit(streams.Event{Kind: streams.Gap, Code: streams.ResetUnknownID}) {
			return id, false, "", nil
		}
		return id, false, head, nil
	case info.lost(id):
		if !emit(streams.Event{Kind: streams.Ready}) || !emit(streams.Event{Kind: streams.Gap, Code: streams.ResetExpiredID, ID: info.first}) {
			return id, false, "", nil
		}
	default:
		if !emit(streams.Event{Kind: streams.Ready}) {
			return id, false, "", nil
		}
	}
	return id, true, "", nil
}

// replayRange emits the entries after after up to head, each as event
// makes it (false: not one for this stream, skipped but passed), and
// returns the id of the last entry read.
func replayRange(ctx context.Context, c rueidis.Client, key string, count int64, after streams.EntryID, head string,
	event func(rueidis.XRangeSlice) (streams.Event, bool), emit func(streams.Event) bool) (string, error) {
	h, _ := streams.ParseEntryID(head)
	for after.Compare(h) < 0 {
		cmd := c.B().Xrange().Key(key).Start("(" + after.String()).End(head).Count(count).Build()
		entries, err := c.Do(ctx, cmd).AsXRangeSlices()
		if err != nil {
			return after.String(), err
		}
		for _, e := range entries {
			if ev, ok := event(e); ok && !emit(ev) {
				return after.String(), nil
			}
			after, _ = streams.ParseEntryID(e.ID)
		}
		if int64(len(entries)) < count {
			break
		}
	}
	return after.String(), nil
}

// backlog emits the last n entries up to head.
func (s *streamLogSpec) backlog(ctx context.Context, head string, emit func(streams.Event) bool) (string, error) {
	c := s.l.Client
	cmd := c.B().Xrevrange().Key(s.q.Key).End(head).Start("-").Count(int64(s.q.Backlog)).Build()
	entries, err := c.Do(ctx, cmd).AsXRangeSlices()
	if err != nil {
		return "", err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if !emit(entryEvent(entries[i])) {
			return "", nil
		}
	}
	return head, nil
}

// newest is the id of the newest entry up to end, 0-0 for none.
func (s *streamLogSpec) newest(ctx context.Context, end string) (streams.EntryID, error) {
	c := s.l.Client
	entries, err := c.Do(ctx, c.B().Xrevrange().Key(s.q.Key).End(end).Start("-").Count(1).Build()).AsXRangeSlices()
	if err != nil || len(entries) == 0 {
		return streams.EntryID{}, err
	}
	id, ok := streams.ParseEntryID(entries[0].ID)
	if !ok {
		return streams.EntryID{}, fmt.Errorf("redis returned entry id %q", entries[0].ID)
	}
	return id, nil
}

// streamInfo is what decides whether the history after a resume id is whole.
type streamInfo struct {
	lastGenerated streams.EntryID
	maxDeleted    streams.EntryID // Redis 7+: the newest id removed by XDEL (not by trimming)
	first         string          // the oldest entry still there, "" for none
	length, added int64           // entries now, and ever added (Redis 7+; else both 0)
}

// lost reports whether entries after id may have gone: id is older than
// the first entry left (trimming removes the oldest first, and Redis does
// not record which ids it trimmed, so this also fires when only id itself
// was trimmed; and a stream deleted and made again has lost everything),
// or an entry after id was XDELeted. 0-0, the position of a stream that was
// empty, has lost nothing while nothing was ever removed.
func (i streamInfo) lost(id streams.EntryID) bool {
	first, ok := streams.ParseEntryID(i.first)
	if ok && id.Compare(first) < 0 && (i.added > i.length || id != (streams.EntryID{})) {
		return true
	}
	return id.Compare(i.maxDeleted) < 0
}

func readStreamInfo(ctx context.Context, c rueidis.Client, key string) (streamInfo, error) {
	m, err := c.Do(ctx, c.B().XinfoStream().Key(key).Build()).AsMap()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return streamInfo{}, nil
		}
		return streamInfo{}, err
	}
	var info streamInfo
	v := m["last-generated-id"]
	str, _ := v.ToString()
	info.lastGenerated, _ = streams.ParseEntryID(str)
	if v, ok := m["max-deleted-entry-id"]; ok {
		str, _ := v.ToString()
		info.maxDeleted, _ = streams.ParseEntryID(str)
	}
	length, added := m["length"], m["entries-added"]
	info.length, _ = length.AsInt64()
	info.added, _ = added.AsInt64()
	if info.added == 0 && info.length > 0 { // before Redis 7: assume trimmed
		info.added = info.length + 1
	}
	if v, ok := m["first-entry"]; ok {
		if e, err := v.AsXRangeSlice(); err == nil {
			info.first = e.ID
		}
	}
	return info, nil
}

// entryEvent is one stream entry as an event: named by its "event" field
// (or "entry"), with its fields, in order, as a JSON object.
func entryEvent(e rueidis.XRangeSlice) streams.Event {
	name := "entry"
	var b bytes.Buffer
	b.WriteByte('{')
	for i, fv := range e.FieldValues {
		if fv.Field == "event" && name == "entry" && streams.CustomEventName(fv.Value) {
			name = fv.Value
		}
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(fv.Field)
		v, _ := json.Marshal(fv.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return streams.Event{ID: e.ID, Name: name, Data: json.RawMessage(b.Bytes())}
}

func (l *StreamLogs) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.Default()
	}
	return l.Logger
}
