package redis

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// Sets keep named sets of combined-stream subs in Redis, so a page with
// more subs than a URL carries POSTs them once and opens the stream by a
// short id, on any Keyflux process. A set's id is a hash of its subs: the
// same set saved twice is one key.
type Sets struct {
	Client rueidis.Client
	// TTL is how long a set lives unused; each Load restarts it.
	TTL time.Duration
}

// ErrUnknownSet: no set has that id (never saved, or expired).
var ErrUnknownSet = streams.ErrUnknownSet

const setPrefix = "keyflux:set:"

// SetIDLen is the length of a set id: 128 bits of hash, base64url.
const SetIDLen = 22

// Save stores subs and returns the set's id and when it expires if unused.
func (s *Sets) Save(ctx context.Context, subs []string) (string, time.Time, error) {
	body, err := json.Marshal(subs)
	if err != nil {
		return "", time.Time{}, err
	}
	sum := sha256.Sum256(body)
	id := base64.RawURLEncoding.EncodeToString(sum[:16])
	c := s.Client
	if err := c.Do(ctx, c.B().Set().Key(setPrefix+id).Value(string(body)).Ex(s.TTL).Build()).Error(); err != nil {
		return "", time.Time{}, err
	}
	return id, time.Now().Add(s.TTL), nil
}

// Load returns the subs of set id and restarts its TTL.
func (s *Sets) Load(ctx context.Context, id string) ([]string, error) {
	if !ValidSetID(id) {
		return nil, ErrUnknownSet
	}
	c := s.Client
	body, err := c.Do(ctx, c.B().Getex().Key(setPrefix+id).Ex(s.TTL).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, ErrUnknownSet
	}
	if err != nil {
		return nil, err
	}
	var subs []string
	if err := json.Unmarshal([]byte(body), &subs); err != nil {
		return nil, ErrUnknownSet // not one of ours
	}
	return subs, nil
}

// ValidSetID reports whether id has the shape of a set id.
func ValidSetID(id string) bool {
	return len(id) == SetIDLen && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}
