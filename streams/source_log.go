package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/reactivex/rxgo/v2"
	"github.com/redis/rueidis"
)

// LogQuery selects a Redis Stream and where a client without a
// Last-Event-ID starts: at the newest entry (the default), at entry From
// (inclusive), or Backlog entries back.
type LogQuery struct {
	Key     string
	From    string
	Backlog int
}

// Logs tails Redis Streams. Unlike pub/sub they are exact: every event id
// is the Redis entry id, so a client resumes after its Last-Event-ID from
// Redis itself, after a Keyflux restart or on another Keyflux process,
// with nothing lost and nothing repeated.
type Logs struct {
	Client rueidis.Client
	Logger *slog.Logger
	// Block bounds one XREAD call, so that a silently dead connection is
	// noticed; 0 means 10 s.
	Block time.Duration

	readers atomic.Int64
}

// Readers returns how many blocking XREAD loops are running (one per
// stream key with clients or lingering).
func (l *Logs) Readers() int { return int(l.readers.Load()) }

// Stream returns the spec of the stream q selects.
func (l *Logs) Stream(q LogQuery) Spec { return &logSpec{l: l, q: q} }

// ErrNotStream is returned by Check for a key that holds another type.
var ErrNotStream = errors.New("not a stream")

// Check fails with ErrNotStream when key exists and is not a stream, so a
// client asking for one gets a clear error instead of a silent stream.
func (l *Logs) Check(ctx context.Context, key string) error {
	typ, err := l.Client.Do(ctx, l.Client.B().Type().Key(key).Build()).ToString()
	if err != nil {
		return err
	}
	if typ != "none" && typ != "stream" {
		return fmt.Errorf("key %q holds a %s: %w", key, typ, ErrNotStream)
	}
	return nil
}

// Append adds an entry (fields as name, value pairs, in order) and returns
// its id. maxLen > 0 trims the stream to that many entries (exactly: a
// client resuming from a trimmed id gets a reset, so trimming must be
// predictable).
func (l *Logs) Append(ctx context.Context, key string, fields []string, maxLen int64) (string, error) {
	args := make([]string, 0, len(fields)+3)
	if maxLen > 0 {
		args = append(args, "MAXLEN", strconv.FormatInt(maxLen, 10))
	}
	args = append(args, "*")
	args = append(args, fields...)
	id, err := l.Client.Do(ctx, l.Client.B().Arbitrary("XADD").Keys(key).Args(args...).Build()).ToString()
	if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return "", fmt.Errorf("key %q: %w", key, ErrNotStream)
	}
	return id, err
}

type logSpec struct {
	l *Logs
	q LogQuery
}

func (s *logSpec) Source() string { return "log" }

// Key is the stream key alone: clients with different starting points share
// one XREAD loop.
func (s *logSpec) Key() string { return "log key=" + s.q.Key }

func (s *logSpec) Describe() map[string]any {
	d := map[string]any{"stream": "log", "key": s.q.Key}
	if s.q.From != "" {
		d["from"] = s.q.From
	}
	if s.q.Backlog > 0 {
		d["backlog"] = s.q.Backlog
	}
	return d
}

func (s *logSpec) CompareIDs(a, b string) int {
	x, okA := ParseEntryID(a)
	y, okB := ParseEntryID(b)
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
func (s *logSpec) Open(ctx context.Context) rxgo.Observable {
	out := make(chan rxgo.Item)
	l := s.l
	log := l.logger()
	block := l.Block
	if block <= 0 {
		block = 10 * time.Second
	}
	l.readers.Add(1)
	go func() {
		defer l.readers.Add(-1)
		defer close(out)
		var wait backoff
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
			log.Warn("reading stream failed; retrying", "key", s.q.Key, "err", err)
			if !wait.wait(ctx) {
				return
			}
		}
		if !send(ctx, out, Event{Kind: Ready, ID: last}) {
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
				log.Warn("tailing stream failed; retrying", "key", s.q.Key, "err", err)
				if !wait.wait(ctx) {
					return
				}
				continue
			}
			wait = backoff{}
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
func (s *logSpec) Replay(ctx context.Context, lastID, head string, emit func(Event) bool) (string, error) {
	h, _ := ParseEntryID(head)
	var after EntryID
	switch {
	case lastID != "":
		id, valid := ParseEntryID(lastID)
		info, err := s.info(ctx)
		if err != nil {
			return "", err
		}
		switch {
		case !valid || info.lastGenerated.Compare(id) < 0: // not an id of this stream
			if !emit(Event{Kind: Ready, ID: head}) || !emit(Event{Kind: Gap, Reason: ResetUnknownID}) {
				return "", nil
			}
			return head, nil
		case info.lost(id):
			if !emit(Event{Kind: Ready}) || !emit(Event{Kind: Gap, Reason: ResetExpiredID, ID: info.first}) {
				return "", nil
			}
		default:
			if !emit(Event{Kind: Ready}) {
				return "", nil
			}
		}
		after = id
	case s.q.Backlog > 0:
		if !emit(Event{Kind: Ready}) {
			return "", nil
		}
		return s.backlog(ctx, head, emit)
	case s.q.From != "":
		from, _ := ParseEntryID(s.q.From)
		if !emit(Event{Kind: Ready}) {
			return "", nil
		}
		after = from.Prev()
	default:
		if !emit(Event{Kind: Ready, ID: head}) {
			return "", nil
		}
		return head, nil
	}
	for after.Compare(h) < 0 {
		c := s.l.Client
		cmd := c.B().Xrange().Key(s.q.Key).Start("(" + after.String()).End(head).Count(readCount).Build()
		entries, err := c.Do(ctx, cmd).AsXRangeSlices()
		if err != nil {
			return after.String(), err
		}
		for _, e := range entries {
			if !emit(entryEvent(e)) {
				return after.String(), nil
			}
			after, _ = ParseEntryID(e.ID)
		}
		if len(entries) < readCount {
			break
		}
	}
	return after.String(), nil
}

// backlog emits the last n entries up to head.
func (s *logSpec) backlog(ctx context.Context, head string, emit func(Event) bool) (string, error) {
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
func (s *logSpec) newest(ctx context.Context, end string) (EntryID, error) {
	c := s.l.Client
	entries, err := c.Do(ctx, c.B().Xrevrange().Key(s.q.Key).End(end).Start("-").Count(1).Build()).AsXRangeSlices()
	if err != nil || len(entries) == 0 {
		return EntryID{}, err
	}
	id, ok := ParseEntryID(entries[0].ID)
	if !ok {
		return EntryID{}, fmt.Errorf("redis returned entry id %q", entries[0].ID)
	}
	return id, nil
}

// streamInfo is what decides whether the history after a resume id is whole.
type streamInfo struct {
	lastGenerated EntryID
	maxDeleted    EntryID // Redis 7+: the newest id removed by XDEL (not by trimming)
	first         string  // the oldest entry still there, "" for none
}

// lost reports whether entries after id may have gone: id is older than
// the first entry left (trimming removes the oldest first, and Redis does
// not record which ids it trimmed, so this also fires when only id itself
// was trimmed), or an entry after id was XDELeted.
func (i streamInfo) lost(id EntryID) bool {
	if first, ok := ParseEntryID(i.first); ok && id.Compare(first) < 0 {
		return true
	}
	return id.Compare(i.maxDeleted) < 0
}

func (s *logSpec) info(ctx context.Context) (streamInfo, error) {
	c := s.l.Client
	m, err := c.Do(ctx, c.B().XinfoStream().Key(s.q.Key).Build()).AsMap()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return streamInfo{}, nil
		}
		return streamInfo{}, err
	}
	var info streamInfo
	v := m["last-generated-id"]
	str, _ := v.ToString()
	info.lastGenerated, _ = ParseEntryID(str)
	if v, ok := m["max-deleted-entry-id"]; ok {
		str, _ := v.ToString()
		info.maxDeleted, _ = ParseEntryID(str)
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
func entryEvent(e rueidis.XRangeSlice) Event {
	name := "entry"
	var b bytes.Buffer
	b.WriteByte('{')
	for i, fv := range e.FieldValues {
		if fv.Field == "event" && name == "entry" && CustomEventName(fv.Value) {
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
	return Event{ID: e.ID, Name: name, Raw: b.Bytes()}
}

func (l *Logs) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.Default()
	}
	return l.Logger
}

// EntryID is a Redis Stream entry id, <milliseconds>-<sequence>.
type EntryID struct{ MS, Seq uint64 }

// ParseEntryID reads "<ms>-<seq>" or "<ms>" (sequence 0).
func ParseEntryID(s string) (EntryID, bool) {
	ms, seq, hasSeq := strings.Cut(s, "-")
	var id EntryID
	var err error
	if id.MS, err = strconv.ParseUint(ms, 10, 64); err != nil || ms[0] == '+' {
		return EntryID{}, false
	}
	if hasSeq {
		if id.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil || seq[0] == '+' {
			return EntryID{}, false
		}
	}
	return id, true
}

func (a EntryID) String() string {
	return strconv.FormatUint(a.MS, 10) + "-" + strconv.FormatUint(a.Seq, 10)
}

// Compare orders ids like strings.Compare.
func (a EntryID) Compare(b EntryID) int {
	switch {
	case a.MS != b.MS:
		if a.MS < b.MS {
			return -1
		}
		return 1
	case a.Seq != b.Seq:
		if a.Seq < b.Seq {
			return -1
		}
		return 1
	}
	return 0
}

// Prev is the id just before a, so that reading after it starts at a.
func (a EntryID) Prev() EntryID {
	switch {
	case a.Seq > 0:
		return EntryID{a.MS, a.Seq - 1}
	case a.MS > 0:
		return EntryID{a.MS - 1, ^uint64(0)}
	}
	return a
}
