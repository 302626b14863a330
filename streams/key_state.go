package streams

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// KeyState is a key as a watcher sees it at one moment.
type KeyState struct {
	Key    string `json:"key"`
	Exists bool   `json:"exists"`
	Type   string `json:"type,omitempty"`
	// Value is a string, a map of hash fields, or a list of members or
	// entries, depending on Type; large values are cut (Truncated).
	Value     any  `json:"value,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
	// TTLms is the time to live in milliseconds; -1 means no expiry.
	TTLms int64 `json:"ttl_ms"`
}

// Reading a key is bounded, so one huge key cannot stall the server or a
// browser: this many bytes of a string, this many items of a collection.
const (
	maxValueBytes = 64 << 10
	maxValueItems = 100
)

// ReadKey reads key's type, TTL and (bounded) value with c, which must not
// be a client-side caching client (TYPE and PTTL are not cacheable anyway).
func ReadKey(ctx context.Context, c rueidis.Client, key string) (KeyState, error) {
	st := KeyState{Key: key, TTLms: -1}
	// A key can change type between TYPE and the read; then read again.
	for try := 0; ; try++ {
		rs := c.DoMulti(ctx, c.B().Type().Key(key).Build(), c.B().Pttl().Key(key).Build())
		typ, err := rs[0].ToString()
		if err != nil {
			return st, err
		}
		ttl, err := rs[1].AsInt64()
		if err != nil {
			return st, err
		}
		if typ == "none" {
			return KeyState{Key: key, TTLms: -1}, nil
		}
		st.Exists, st.Type, st.TTLms = true, typ, max(ttl, -1)
		st.Value, st.Truncated, err = readValue(ctx, c, typ, key)
		if rueidis.IsRedisNil(err) { // gone in between
			return KeyState{Key: key, TTLms: -1}, nil
		}
		if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "WRONGTYPE") && try < 2 {
			continue
		}
		return st, err
	}
}

func readValue(ctx context.Context, c rueidis.Client, typ, key string) (any, bool, error) {
	const n = maxValueItems
	switch typ {
	case "string":
		s, err := c.Do(ctx, c.B().Getrange().Key(key).Start(0).End(maxValueBytes).Build()).ToString()
		if len(s) > maxValueBytes {
			return s[:maxValueBytes], true, err
		}
		return s, false, err
	case "hash":
		e, err := c.Do(ctx, c.B().Hscan().Key(key).Cursor(0).Count(n).Build()).AsScanEntry()
		m := make(map[string]string, len(e.Elements)/2)
		for i := 0; i+1 < len(e.Elements); i += 2 {
			m[e.Elements[i]] = e.Elements[i+1]
		}
		return m, e.Cursor != 0, err
	case "set":
		e, err := c.Do(ctx, c.B().Sscan().Key(key).Cursor(0).Count(n).Build()).AsScanEntry()
		return e.Elements, e.Cursor != 0, err
	case "list":
		l, err := c.Do(ctx, c.B().Lrange().Key(key).Start(0).Stop(n).Build()).AsStrSlice()
		if len(l) > n {
			return l[:n], true, err
		}
		return l, false, err
	case "zset":
		z, err := c.Do(ctx, c.B().Zrange().Key(key).Min("0").Max(strconv.Itoa(n)).Withscores().Build()).AsZScores()
		type member struct {
			Member string  `json:"member"`
			Score  float64 `json:"score"`
		}
		out := make([]member, 0, len(z))
		for _, m := range z {
			out = append(out, member{m.Member, m.Score})
		}
		if len(out) > n {
			return out[:n], true, err
		}
		return out, false, err
	case "stream":
		x, err := c.Do(ctx, c.B().Xrevrange().Key(key).End("+").Start("-").Count(n+1).Build()).AsXRange()
		type entry struct {
			ID     string            `json:"id"`
			Fields map[string]string `json:"fields"`
		}
		out := make([]entry, 0, len(x))
		for _, e := range x {
			out = append(out, entry{e.ID, e.FieldValues})
		}
		if len(out) > n {
			return out[:n], true, err
		}
		return out, false, err
	}
	return nil, false, nil // a module type: its name and TTL are all we show
}
