package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

var (
	// ErrFenced: the append was refused because the lease no longer holds
	// the appender's token (it expired, or another writer acquired it).
	// Nothing was written; the caller is no longer the writer.
	ErrFenced = errors.New("journal append fenced: lease not held by this token")
	// ErrTailMoved: the journal's last entry is not the one the caller
	// expected. Nothing was written.
	ErrTailMoved = errors.New("journal tail moved")
)

// Bounds on one append, so one script never holds Redis's single thread
// for long and never overflows Lua's unpack stack.
const (
	maxAppendEntries = 1000
	maxEntryFields   = 256 // name/value pairs per entry
)

// AppendOptions trim the journal and guard its tail. The zero value
// appends unconditionally and trims nothing.
type AppendOptions struct {
	MaxLen int64  // after appending, XTRIM MAXLEN ~ MaxLen; 0: none
	MinID  string // after appending, XTRIM MINID ~ MinID ("ms" or "ms-seq"); "": none
	// ExpectTail: append only if the id of the journal's last entry is this
	// one ("0-0" for an empty or missing journal), else ErrTailMoved. ""
	// means any tail. Checked in the same script as the lease, so a writer
	// filling a gap from what it saw cannot interleave with another append.
	ExpectTail string
}

// MinIDBefore is the MINID that trims entries older than t: journal ids
// are Redis's own, milliseconds of Redis's clock first.
func MinIDBefore(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) + "-0" }

// KEYS[1] lease, KEYS[2] journal.
// ARGV[1] token, ARGV[2] expected tail (” any), ARGV[3] MAXLEN (” none),
// ARGV[4] MINID (” none), then per entry: its count of strings, then
// name, value, ... Returns the new ids in order. Both checks come before
// any write, so a refused append writes nothing.
var appendScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED lease not held by this token')
end
if ARGV[2] ~= '' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local tail = '0-0'
  if #last > 0 then tail = last[1][1] end
  if tail ~= ARGV[2] then return redis.error_reply('TAILMOVED ' .. tail) end
end
local ids = {}
local i = 5
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = {'XADD', KEYS[2], '*'}
  for j = 1, n do args[#args + 1] = ARGV[i + j] end
  ids[#ids + 1] = redis.call(unpack(args))
  i = i + n + 1
end
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('XTRIM', KEYS[2], 'MINID', '~', ARGV[4]) end
return ids
`)

// Append adds one entry (fields: name, value, ...) to the journal if token
// still holds the lease, and returns its id. ErrFenced or ErrTailMoved
// (see AppendOptions) mean nothing was written.
func (l *Lease) Append(ctx context.Context, token Token, fields []string, opt AppendOptions) (string, error) {
	ids, err := l.AppendBatch(ctx, token, [][]string{fields}, opt)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// AppendBatch adds entries in order, atomically: all or none (a gap
// filled at once). Same rules as Append; at most 1000 entries of at most
// 256 fields each.
func (l *Lease) AppendBatch(ctx context.Context, token Token, entries [][]string, opt AppendOptions) ([]string, error) {
	lease, err := l.Key()
	if err != nil {
		return nil, err
	}
	args, err := appendArgs(token, entries, opt)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", l.Journal, err)
	}
	arr, err := appendScript.Exec(ctx, l.Client, []string{lease, l.Journal}, args).ToArray()
	if err != nil {
		return nil, appendError(l.Journal, err)
	}
	if len(arr) != len(entries) {
		return nil, fmt.Errorf("journal %s: append returned %d ids for %d entries", l.Journal, len(arr), len(entries))
	}
	ids := make([]string, len(arr))
	for i, m := range arr {
		if ids[i], err = m.ToString(); err != nil {
			return nil, fmt.Errorf("journal %s: append id: %w", l.Journal, err)
		}
	}
	return ids, nil
}

func appendArgs(token Token, entries [][]string, opt AppendOptions) ([]string, error) {
	if token.IsZero() {
		return nil, errors.New("append without a lease token")
	}
	if len(entries) == 0 || len(entries) > maxAppendEntries {
		return nil, fmt.Errorf("append of %d entries: 1 to %d per call", len(entries), maxAppendEntries)
	}
	if opt.MaxLen < 0 {
		return nil, fmt.Errorf("append: negative MaxLen %d", opt.MaxLen)
	}
	if opt.MinID != "" && !validStreamID(opt.MinID) {
		return nil, fmt.Errorf("append: MinID %q is not a stream id", opt.MinID)
	}
	if opt.ExpectTail != "" && !validStreamID(opt.ExpectTail) {
		return nil, fmt.Errorf("append: ExpectTail %q is not a stream id", opt.ExpectTail)
	}
	maxLen := ""
	if opt.MaxLen > 0 {
		maxLen = strconv.FormatInt(opt.MaxLen, 10)
	}
	n := 4 + len(entries)
	for _, e := range entries {
		if len(e) == 0 || len(e)%2 != 0 || len(e) > 2*maxEntryFields {
			return nil, fmt.Errorf("append: an entry has %d strings: want name/value pairs, 1 to %d", len(e), maxEntryFields)
		}
		n += len(e)
	}
	args := make([]string, 0, n)
	args = append(args, token.String(), opt.ExpectTail, maxLen, opt.MinID)
	for _, e := range entries {
		args = append(args, strconv.Itoa(len(e)))
		args = append(args, e...)
	}
	return args, nil
}

// appendError maps the script's refusals to ErrFenced and ErrTailMoved.
func appendError(journal string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok {
		msg := strings.TrimPrefix(re.Error(), "-")
		switch {
		case strings.HasPrefix(msg, "FENCED"):
			return ErrFenced
		case strings.HasPrefix(msg, "TAILMOVED "):
			return fmt.Errorf("%w: last entry is %s", ErrTailMoved, strings.TrimPrefix(msg, "TAILMOVED "))
		}
	}
	return fmt.Errorf("journal %s: append: %w", journal, err)
}

// validStreamID accepts "ms" or "ms-seq" in decimal, as XTRIM and
// XREVRANGE print and take them.
func validStreamID(id string) bool {
	ms, seq, dash := strings.Cut(id, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	if dash {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return false
		}
	}
	return true
}
