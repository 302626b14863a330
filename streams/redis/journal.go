package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// Journals keep keyspace notifications and pub/sub messages in Redis
// Streams, so that every Keyflux process serves the same events with the
// same ids, and a client resumes exactly on whichever process it reaches,
// through restarts. A journal runs in a process while one of its topics
// needs it:
//
//   - it keeps its own subscription (through Upstreams) and records what it
//     saw since subscribing, in order (the record);
//   - exactly one process holds the journal's lease (journal_lease.go) and
//     appends its record to the journal, fenced by the lease;
//   - every process, writer included, reads the journal (XREAD) and hands
//     the entries to its topics, whose event ids are the entry ids.
//
// A process that takes the lease over places the journal's end in its own
// record (journal_align.go) and appends what the journal misses; when it
// cannot prove where the journal ends it appends a reset entry instead.
type Journals struct {
	Client    rueidis.Client
	Upstreams *Upstreams
	Notify    *NotifyConfig // keyspace journals re-apply the flags; may be nil
	Metrics   *JournalMetrics
	Logger    *slog.Logger
	// MaxLen and TTL bound each journal (XTRIM MAXLEN ~ and MINID ~ after
	// every append); 0 means no bound.
	MaxLen int64
	TTL    time.Duration
	// Lease is how long a writer that stops renewing keeps the journal:
	// the longest a dead writer's journal goes unwritten.
	Lease time.Duration
	// Owner names this process in lease tokens (host and pid when empty).
	Owner string
	// Block bounds one XREAD call; 0 means 10 s.
	Block time.Duration

	mu      sync.Mutex
	live    map[string]*journal
	wg      sync.WaitGroup
	readers readers
}

// Journal keys. Keyspace journals are one per database; channel journals
// one per channel or pattern, named by a hash so that any channel name
// makes a short, slot-safe key.
const (
	journalPrefix = "keyflux:journal:"
	// recordMax bounds a journal's record: a standby that takes over after
	// more messages than this since the journal's end records a reset. The
	// record also forgets what is older than two leases.
	recordMax = 16384
	// recordMaxBytes bounds it too: payloads come from Redis, any size.
	recordMaxBytes = 8 << 20
	// alignMax is how much of the journal's end a takeover reads.
	alignMax = 4096
	// appendMax and appendMaxBytes bound one append (at least one entry).
	appendMax      = 512
	appendMaxBytes = 1 << 20
)

// KeyspaceJournal is the journal key of database db's keyspace events.
func KeyspaceJournal(db int) string { return journalPrefix + "keyspace:" + strconv.Itoa(db) }

// ChannelJournal is the journal key of a channel, or of a pattern.
func ChannelJournal(name string, pattern bool) string {
	kind := "channel:"
	if pattern {
		kind = "pattern:"
	}
	sum := sha256.Sum256([]byte(name))
	return journalPrefix + kind + hex.EncodeToString(sum[:16])
}

// ownKey reports keys of Keyflux's journals and leases, whose own keyspace
// events must never be journaled (each append would make another).
func ownKey(key string) bool {
	return strings.HasPrefix(key, journalPrefix) || strings.HasPrefix(key, "{"+journalPrefix)
}

// journal is one journal in this process.
type journal struct {
	js     *Journals
	key    string
	target Target
	lease  Lease
	ctx    context.Context
	cancel context.CancelFunc
	refs   int // guarded by js.mu
	log    *slog.Logger

	mu     sync.Mutex
	ready  bool    // subscribed: the record is whole from its start
	record []seen  // what this process saw since it (re)subscribed, oldest first
	when   []int64 // when it saw each (Unix ns), to forget what no takeover needs
	bytes  int     // the record's payload bytes
	first  uint64  // the number of record[0]; numbers never repeat
	// While this process writes: next is the number of the first message
	// not yet appended, owed a reset reason to append before it.
	writing bool
	next    uint64
	owed    string
	gaps    uint64        // counts moves of next by a gap, so an append in flight cannot undo one
	wake    chan struct{} // the writer has something to append; one slot
	subbed  chan struct{} // closed once subscribed

	// The reader hands entries to listeners under rmu, so a listener that
	// joins gets exactly the entries after at.
	rmu       sync.Mutex
	at        string // the last entry read; "" until the reader has started
	listeners map[*journalListener]struct{}
}

// journalEntry is one entry as read: a message, or a reset.
type journalEntry struct {
	id    string
	msg   seen
	reset string // the reset's reason, for a reset entry
}

type journalListener struct {
	entry func(journalEntry)
	ready func(at string)
}

func (js *Journals) logger() *slog.Logger {
	if js.Logger == nil {
		return slog.Default()
	}
	return js.Logger
}

func (js *Journals) owner() string {
	if js.Owner != "" {
		return js.Owner
	}
	host, _ := os.Hostname()
	return host + "-" + strconv.Itoa(os.Getpid())
}

// acquire returns the running journal of key, starting it on first use.
func (js *Journals) acquire(key string, t Target) *journal {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.live == nil {
		js.live = make(map[string]*journal)
	}
	if j := js.live[key]; j != nil {
		j.refs++
		return j
	}
	ctx, cancel := context.WithCancel(context.Background())
	lease := max(js.Lease, 10*time.Millisecond)
	j := &journal{js: js, key: key, target: t, ctx: ctx, cancel: cancel, refs: 1,
		log:   js.logger().With("journal", key),
		lease: Lease{Client: js.Client, Journal: key, TTL: lease, Owner: js.owner(), Logger: js.Logger},
		wake:  make(chan struct{}, 1), subbed: make(chan struct{}),
		listeners: make(map[*journalListener]struct{})}
	js.live[key] = j
	js.wg.Add(1)
	go j.run()
	return j
}

// release drops one use of j; the last stops it.
func (js *Journals) release(j *journal) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if j.refs--; j.refs == 0 {
		delete(js.live, j.key)
		j.cancel()
	}
}

// Close stops every journal and waits until each writer has released its
// lease, so that another process takes over at once.
func (js *Journals) Close() {
	js.mu.Lock()
	for _, j := range js.live {
		j.cancel()
	}
	js.mu.Unlock()
	js.wg.Wait()
	js.readers.close()
}

// Writing returns the keys of the journals this process writes.
func (js *Journals) Writing() []string {
	js.mu.Lock()
	defer js.mu.Unlock()
	var keys []string
	for k, j := range js.live {
		j.mu.Lock()
		if j.writing {
			keys = append(keys, k)
		}
		j.mu.Unlock()
	}
	return keys
}

// listen adds l: it gets ready once the reader has started, then every
// entry after that position.
func (j *journal) listen(l *journalListener) (stop func()) {
	j.rmu.Lock()
	j.listeners[l] = struct{}{}
	if j.at != "" {
		l.ready(j.at)
	}
	j.rmu.Unlock()
	return func() {
		j.rmu.Lock()
		delete(j.listeners, l)
		j.rmu.Unlock()
	}
}

// run subscribes, starts the reader once subscribed, and campaigns for the
// lease until the journal stops.
func (j *journal) run() {
	defer j.js.wg.Done()
	m := orUnregisteredJournal(j.js.Metrics)
	leave := j.js.Upstreams.Join(j.target, &Listener{OnMessage: j.saw, OnState: j.state})
	untrack := func() {}
	if j.js.Notify != nil && j.target.Resync != nil {
		untrack = j.trackNotify()
	}
	defer func() {
		untrack()
		leave()
		m.Writer.DeleteLabelValues(j.key)
	}()
	m.Writer.WithLabelValues(j.key).Set(0)
	select {
	case <-j.subbed:
	case <-j.ctx.Done():
		return
	}
	if !j.startReading() {
		return
	}
	defer j.js.readers.remove(j)
	j.rmu.Lock()
	existing := j.at != "0-0"
	j.rmu.Unlock()
	j.campaign(existing)
}

// saw records one message from the subscription. It runs on the Redis
// connection's reader: it only records and wakes the writer.
func (j *journal) saw(msg rueidis.PubSubMessage) {
	s, ok := j.message(msg)
	if !ok {
		return
	}
	j.mu.Lock()
	if !j.ready {
		j.mu.Unlock()
		return
	}
	now := time.Now().UnixNano()
	j.record = append(j.record, s)
	j.when = append(j.when, now)
	j.bytes += s.size()
	// A takeover needs what came after the journal's end, which a dead
	// writer left at most a lease ago: keep two leases' worth (and a proof's).
	old := now - int64(2*j.lease.TTL+time.Second)
	drop := 0
	for drop < len(j.when)-1 && (len(j.when)-drop > recordMax || j.bytes > recordMaxBytes ||
		len(j.when)-drop > 2*minProof && j.when[drop] < old) {
		j.bytes -= j.record[drop].size()
		drop++
	}
	if drop > 0 {
		j.record, j.when = j.record[drop:], j.when[drop:]
		j.first += uint64(drop)
		if j.writing && j.next < j.first {
			j.next, j.owed = j.first, streams.ResetOverflow
			j.gaps++
		}
	}
	writing := j.writing
	j.mu.Unlock()
	if writing {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
}

// message turns a subscription message into what the journal records.
func (j *journal) message(msg rueidis.PubSubMessage) (seen, bool) {
	if strings.HasPrefix(j.target.Name, "__keyspace@") {
		_, key, _ := strings.Cut(msg.Channel, "__:")
		if strings.HasPrefix(key, probePrefix) || ownKey(key) {
			return seen{}, false
		}
		return seen{key, msg.Message}, true
	}
	if j.target.Pattern && streams.InternalChannel(msg.Channel) {
		return seen{}, false
	}
	return seen{msg.Channel, msg.Message}, true
}

// state follows the subscription: once live the record starts; after a
// resubscription the messages in between are lost, so the record starts
// again and a writer owes a reset.
func (j *journal) state(k streams.Kind, _ string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if k == streams.Gap || !j.ready {
		j.first += uint64(len(j.record))
		j.record, j.when, j.bytes = nil, nil, 0
		if j.writing && k == streams.Gap {
			j.next, j.owed = j.first, streams.ResetGap
			j.gaps++
		}
	}
	if k == streams.Ready && !j.ready {
		j.ready = true
		close(j.subbed)
	}
}

// trackNotify makes a writer owe a reset when the keyspace flags were
// found off: Redis sent nothing meanwhile.
func (j *journal) trackNotify() func() {
	p := newPump(4, orUnregistered(nil).Dropped)
	untrack := j.js.Notify.track(p)
	go func() {
		for item := range p.observable().Observe() {
			if ev, ok := item.V.(streams.Event); ok && ev.Kind == streams.Gap {
				j.mu.Lock()
				if j.writing {
					j.owed = streams.ResetNotifyConfig
				}
				j.mu.Unlock()
			}
		}
	}()
	return func() {
		untrack()
		p.close()
	}
}

// campaign tries for the lease every quarter of its TTL and writes while
// it holds it.
func (j *journal) campaign(existing bool) {
	every := j.lease.TTL / 4
	failed := streams.Backoff{Min: every, Max: 30 * time.Second}
	if existing {
		// A journal others may be writing, or have just released: leave
		// the lease to processes that have watched it longer, whose record
		// can place its end, for one lease.
		t := time.NewTimer(j.lease.TTL)
		select {
		case <-j.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	for {
		token, ok, err := j.lease.Acquire(j.ctx)
		wait := every/2 + rand.N(every) // standbys do not all ask at once
		switch {
		case j.ctx.Err() != nil:
			return
		case err != nil:
			j.log.Warn("journal lease: acquire failed", "err", err)
			wait = failed.Next()
		case ok:
			failed.Reset()
			j.write(token)
			if j.ctx.Err() != nil {
				return
			}
		default:
			failed.Reset()
		}
		t := time.NewTimer(wait)
		select {
		case <-j.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// write holds the lease, takes the journal over and appends until the
// lease is lost or the journal stops; then it releases the lease.
func (j *journal) write(token Token) {
	m := orUnregisteredJournal(j.js.Metrics)
	ctx, cancel := context.WithCancel(j.ctx)
	held := make(chan struct{})
	go func() {
		defer close(held)
		_ = j.lease.Hold(ctx, token, cancel)
	}()
	defer func() {
		cancel()
		<-held
		j.mu.Lock()
		j.writing = false
		j.mu.Unlock()
		m.Writer.WithLabelValues(j.key).Set(0)
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		defer rcancel()
		if err := j.lease.Release(rctx, token); err != nil {
			j.log.Debug("journal lease: release failed", "err", err)
		}
	}()
	m.Writer.WithLabelValues(j.key).Set(1)
	m.Acquired.Inc()
	tail, err := j.takeover(ctx)
	if err != nil {
		if ctx.Err() == nil {
			j.log.Warn("journal takeover failed", "err", err)
		}
		return
	}
	j.log.Info("writing the journal", "token", token.String())
	j.appendLoop(ctx, token, tail)
}

// takeover decides where this writer starts: right after the journal's
// end in its record, or, when that cannot be proven, after a reset and at
// the newest message. It returns the journal's last id.
func (j *journal) takeover(ctx context.Context) (string, error) {
	wait := max(j.lease.TTL/20, 20*time.Millisecond)
	for try := 0; ; try++ {
		tail, last, whole, err := j.journalTail(ctx)
		if err != nil {
			return "", err
		}
		j.mu.Lock()
		at, ok := align(tail, j.record, whole)
		if ok || try == 4 {
			j.writing = true
			if ok {
				j.next = j.first + uint64(at+1)
				j.owed = ""
			} else {
				// The reset tells clients something may be missing; what
				// this process saw follows it, so only what nobody saw is.
				j.next = j.first + uint64(guess(tail, j.record)+1)
				j.owed = streams.ResetGap
				j.log.Warn("journal takeover: cannot prove where the journal ends in what this process saw; recording a reset",
					"journal_messages", len(tail), "seen", len(j.record))
			}
			j.mu.Unlock()
			return last, nil
		}
		j.mu.Unlock()
		// Our own subscription may still be behind the journal: wait a little.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// journalTail reads the journal's end: its messages after its last reset
// (at most alignMax, oldest first), the id of its last entry ("0-0" when
// empty), and whether those messages reach back to its start or reset.
func (j *journal) journalTail(ctx context.Context) (tail []seen, last string, whole bool, err error) {
	// No placement compares more of the journal than the record holds (or
	// a proof needs): reading more would only cost Redis and memory.
	j.mu.Lock()
	limit := min(alignMax, max(len(j.record), minProof))
	j.mu.Unlock()
	c := j.js.Client
	entries, err := c.Do(ctx, c.B().Xrevrange().Key(j.key).End("+").Start("-").Count(int64(limit)+1).Build()).AsXRangeSlices()
	if err != nil {
		return nil, "", false, err
	}
	last = "0-0"
	if len(entries) > 0 {
		last = entries[0].ID
	}
	whole = len(entries) <= limit
	n := 0
	for _, e := range entries[:min(len(entries), limit)] {
		je := parseEntry(e)
		if je.reset != "" {
			whole = true
			break
		}
		n++
	}
	tail = make([]seen, n)
	for i := range n {
		tail[n-1-i] = parseEntry(entries[i]).msg
	}
	return tail, last, whole, nil
}

// appendLoop appends the record from next on, in batches, until ctx ends
// or the lease is lost. Every append expects the journal's tail to be the
// last one it wrote: a reply lost on the way cannot append twice.
func (j *journal) appendLoop(ctx context.Context, token Token, tail string) {
	m := orUnregisteredJournal(j.js.Metrics)
	var wait streams.Backoff
	for {
		j.mu.Lock()
		owed := j.owed
		from, gaps := j.next, j.gaps
		start := int(from - j.first)
		batch := make([][]string, 0, min(appendMax, len(j.record)-start+1))
		if owed != "" {
			batch = append(batch, []string{"reset", owed})
		}
		size := 0
		for _, s := range j.record[start:min(len(j.record), start+appendMax-len(batch))] {
			if size += s.size(); size > appendMaxBytes && len(batch) > 0 {
				break
			}
			batch = append(batch, j.fields(s))
		}
		j.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-j.wake:
				continue
			}
		}
		opt := AppendOptions{MaxLen: j.js.MaxLen, ExpectTail: tail}
		if j.js.TTL > 0 {
			opt.MinID = MinIDBefore(time.Now().Add(-j.js.TTL))
		}
		ids, err := j.lease.AppendBatch(ctx, token, batch, opt)
		var moved string
		switch {
		case err == nil:
			tail = ids[len(ids)-1]
		case errors.Is(err, ErrTailMoved):
			// Only the lease holder appends: an earlier try of this very
			// batch went through and its reply was lost.
			moved = movedTail(err)
			if moved == "" {
				j.log.Warn("journal append: tail moved", "err", err)
				return
			}
			tail = moved
		case errors.Is(err, ErrFenced), ctx.Err() != nil:
			return
		default:
			j.log.Warn("journal append failed; retrying", "err", err)
			if !wait.Wait(ctx) {
				return
			}
			continue
		}
		wait.Reset()
		n := len(batch)
		m.Appended.Add(float64(n))
		if owed != "" {
			n--
			m.Resets.WithLabelValues(owed).Inc()
		}
		j.mu.Lock()
		if j.gaps == gaps { // else a gap moved next and owes its own reset
			j.next, j.owed = from+uint64(n), ""
		}
		j.mu.Unlock()
	}
}

// movedTail is the tail an ErrTailMoved reports.
func movedTail(err error) string {
	_, tail, ok := strings.Cut(err.Error(), "last entry is ")
	if !ok || !validStreamID(tail) {
		return ""
	}
	return tail
}

// fields are a message's journal entry.
func (j *journal) fields(s seen) []string {
	if strings.HasPrefix(j.target.Name, "__keyspace@") {
		return []string{"key", s.a, "event", s.b}
	}
	return []string{"channel", s.a, "message", s.b}
}

// parseEntry reads an entry written by fields (or a reset).
func parseEntry(e rueidis.XRangeSlice) journalEntry {
	je := journalEntry{id: e.ID}
	for _, fv := range e.FieldValues {
		switch fv.Field {
		case "key", "channel":
			je.msg.a = fv.Value
		case "event", "message":
			je.msg.b = fv.Value
		case "reset":
			je.reset = fv.Value
		}
	}
	return je
}
