package redis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyflux/keyflux/streams"
	"github.com/redis/rueidis"
)

// truncated stands in for a value larger than the configured limit: it is
// never cut silently.
type truncated struct {
	Truncated bool `json:"truncated"`
	Size      int  `json:"size"`
}

// binary is a string that is not UTF-8 text.
type binary struct {
	Base64 string `json:"base64"`
}

// streamSummary is what a stream key's value says: its length and last id.
type streamSummary struct {
	Length int64   `json:"length"`
	LastID *string `json:"last_id"`
}

// Values reads keys of any type into KeyStates. With a caching client the
// reads go through rueidis DoCache: Redis serves a key once per change (its
// invalidation drops the local copy) and every other read is local.
type Values struct {
	Client rueidis.Client
	// Cached says the client keeps a client-side cache; the remaining TTL
	// then comes from the cache entry (rueidis reads PTTL with every miss).
	// Without it every Read asks Redis, with PTTL.
	Cached bool
	// MaxBytes bounds the JSON of one value; a larger one is sent as
	// {"truncated": true, "size": N}, N being the bytes of its JSON.
	MaxBytes int
	// Reads counts the reads that reached Redis (nil: not counted).
	Reads interface{ Inc() }
}

// cacheFor keeps cache entries until Redis invalidates them; a key's own
// expiry shortens its entry (rueidis takes the smaller of the two).
const cacheFor = 100 * 365 * 24 * time.Hour

// neverExpires tells "the entry lives as long as cacheFor" (no TTL in Redis)
// from a real TTL, which is never anywhere near as long.
const neverExpires = 50 * 365 * 24 * time.Hour

// Read returns the key's current state. A key whose type changes between
// the two reads (TYPE, then the value) is read again.
func (v *Values) Read(ctx context.Context, key string) (streams.KeyState, error) {
	var err error
	for range 5 {
		var st streams.KeyState
		st, err = v.read(ctx, key)
		if !isWrongType(err) {
			return st, err
		}
	}
	return streams.KeyState{}, err
}

func isWrongType(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(re.Error(), "WRONGTYPE")
}

func (v *Values) read(ctx context.Context, key string) (streams.KeyState, error) {
	st := streams.KeyState{Key: key, Type: "none", Value: json.RawMessage("null"), TTLms: -2}
	b := v.Client.B()
	var typ rueidis.RedisResult
	ttl := int64(-1)
	if v.Cached {
		typ = v.Client.DoCache(ctx, b.Type().Key(key).Cache(), cacheFor)
		if !typ.IsCacheHit() {
			v.counted()
		}
		if pxat := typ.CachePXAT(); pxat > 0 && pxat < time.Now().Add(neverExpires).UnixMilli() {
			ttl = max(pxat-time.Now().UnixMilli(), 0)
			st.ExpireAt = pxat
		}
	} else {
		res := v.Client.DoMulti(ctx, b.Type().Key(key).Build(), b.Pttl().Key(key).Build())
		v.counted()
		typ = res[0]
		if n, err := res[1].AsInt64(); err == nil && n >= 0 {
			ttl, st.ExpireAt = n, time.Now().UnixMilli()+n
		}
	}
	t, err := typ.ToString()
	if err != nil {
		return st, err
	}
	if t == "none" {
		return st, nil
	}
	val, err := v.value(ctx, key, t)
	if rueidis.IsRedisNil(err) { // it expired or went between TYPE and its value
		return st, nil
	}
	if err != nil {
		return st, err
	}
	js, err := json.Marshal(val)
	if err != nil {
		return st, fmt.Errorf("encoding %s %q: %w", t, key, err)
	}
	if v.MaxBytes > 0 && len(js) > v.MaxBytes {
		js, _ = json.Marshal(truncated{Truncated: true, Size: len(js)})
	}
	st.Exists, st.Type, st.Value, st.TTLms = true, t, js, ttl
	return st, nil
}

// do reads through the cache when there is one.
func (v *Values) do(ctx context.Context, cmd rueidis.Cacheable) rueidis.RedisResult {
	res := v.Client.DoCache(ctx, cmd, cacheFor)
	if !res.IsCacheHit() {
		v.counted()
	}
	return res
}

func (v *Values) counted() {
	if v.Reads != nil {
		v.Reads.Inc()
	}
}

// value reads a key of type t and shapes it for JSON.
func (v *Values) value(ctx context.Context, key, t string) (any, error) {
	b := v.Client.B()
	switch t {
	case "string":
		s, err := v.do(ctx, b.Get().Key(key).Cache()).ToString()
		return text(s), err
	case "hash":
		m, err := v.do(ctx, b.Hgetall().Key(key).Cache()).AsStrMap()
		return hashValue(m), err
	case "list":
		l, err := v.do(ctx, b.Lrange().Key(key).Start(0).Stop(-1).Cache()).AsStrSlice()
		return texts(l), err
	case "set":
		l, err := v.do(ctx, b.Smembers().Key(key).Cache()).AsStrSlice()
		slices.Sort(l) // Redis's order is arbitrary; sorted, equal sets look equal
		return texts(l), err
	case "zset":
		zs, err := v.do(ctx, b.Zrange().Key(key).Min("0").Max("-1").Withscores().Cache()).AsZScores()
		out := make([][2]any, len(zs))
		for i, z := range zs {
			out[i] = [2]any{text(z.Member), score(z.Score)}
		}
		return out, err
	case "stream":
		// XLEN and XREVRANGE have no typed Cache() builder in rueidis, but
		// both are read-only and keyed, which is all tracking needs.
		n, err := v.do(ctx, rueidis.Cacheable(b.Arbitrary("XLEN").Keys(key).Build())).AsInt64()
		if err != nil {
			return nil, err
		}
		last, err := v.do(ctx, rueidis.Cacheable(b.Arbitrary("XREVRANGE").Keys(key).Args("+", "-", "COUNT", "1").Build())).AsXRange()
		s := streamSummary{Length: n}
		if len(last) > 0 {
			s.LastID = &last[0].ID
		}
		return s, err
	}
	return nil, nil // a module's type: its name is all Keyflux can say
}

// text is UTF-8 text as a JSON string, any other bytes as {"base64": ...}.
func text(s string) any {
	if utf8.ValidString(s) {
		return s
	}
	return binary{Base64: base64.StdEncoding.EncodeToString([]byte(s))}
}

func texts(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = text(s)
	}
	return out
}

// hashValue is a JSON object, unless a field name is not UTF-8 text: JSON
// object keys cannot carry bytes, so such a hash becomes [field, value] pairs.
func hashValue(m map[string]string) any {
	obj := make(map[string]any, len(m))
	for f, val := range m {
		if !utf8.ValidString(f) {
			return hashPairs(m)
		}
		obj[f] = text(val)
	}
	return obj
}

func hashPairs(m map[string]string) [][2]any {
	fields := make([]string, 0, len(m))
	for f := range m {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	out := make([][2]any, len(fields))
	for i, f := range fields {
		out[i] = [2]any{text(f), text(m[f])}
	}
	return out
}

// score is a JSON number; the infinities JSON lacks are "inf" and "-inf",
// as Redis writes them.
func score(f float64) any {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}
