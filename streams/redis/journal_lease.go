package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// A journal has exactly one writer at a time. The writer holds a lease: a
// key next to the journal whose value is the holder's Token, set with
// SET NX PX and renewed while the holder lives. Every append checks, in the
// same script, that the lease still holds the appender's exact token
// (journal_append.go), so a writer that was paused past its TTL and
// replaced can never append again: it is fenced by Redis, not by its own
// idea of time.
//
// Keys, all in one hash slot so the scripts run on a Redis Cluster:
//
//	journal:  the stream, named by the caller, e.g. "kf:journal:ks:0"
//	lease:    "{kf:journal:ks:0}:lease" (or "<journal>:lease" when the
//	          journal already has a {tag}: the tag is kept)
//	epoch:    "<lease>:epoch", a counter with no TTL
//
// The epoch is INCRed in the same script as the SET, so each successful
// acquisition gets a strictly larger number than every earlier one (while
// the epoch key lives). Safety never rests on it: a token also carries a
// random owner, so even if the epoch key were deleted no two acquisitions
// share a token.

// ErrLeaseLost is what Hold returns once the lease is no longer ours.
var ErrLeaseLost = errors.New("journal lease lost")

// Token is one acquisition of a lease: the value the lease key holds while
// it is ours.
type Token struct {
	Owner string // who acquired, with a random part: unique per acquisition
	Epoch int64  // fencing number, strictly larger for each acquisition

	sent time.Time // when Acquire sent the SET: the lease ends by sent+TTL unless renewed
}

// String is the lease key's value.
func (t Token) String() string { return t.Owner + ":" + strconv.FormatInt(t.Epoch, 10) }

// IsZero reports a token that was never acquired.
func (t Token) IsZero() bool { return t.Owner == "" }

// LeaseKey is the lease key of a journal: in the journal's hash slot, so
// the lease and the journal can be used in one script on a cluster. A
// journal with no {tag} of its own gets its whole name as the lease's
// tag; a name with a '}' but no tag cannot be wrapped and is refused.
func LeaseKey(journal string) (string, error) {
	if journal == "" {
		return "", errors.New("journal lease: empty journal key")
	}
	if hasHashTag(journal) {
		return journal + ":lease", nil
	}
	if strings.ContainsRune(journal, '}') {
		return "", fmt.Errorf("journal lease: key %q has a '}' but no hash tag; give it a {tag}", journal)
	}
	return "{" + journal + "}:lease", nil
}

// hasHashTag follows Redis Cluster: the part between the first '{' and
// the first '}' after it is the tag when it is not empty.
func hasHashTag(key string) bool {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(key[open+1:], '}')
	return end > 0
}

func epochKey(lease string) string { return lease + ":epoch" }

// KEYS[1] lease, KEYS[2] epoch; ARGV[1] owner, ARGV[2] TTL in ms.
// Returns the new epoch, or 0 when someone holds the lease.
var acquireScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'NX', 'PX', ARGV[2])
return epoch
`)

// KEYS[1] lease; ARGV[1] token, ARGV[2] TTL in ms. 1 when renewed.
var renewScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// KEYS[1] lease; ARGV[1] token. 1 when released.
var releaseScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lease elects one writer for one journal. Its methods are safe for
// concurrent use; the struct itself is configuration.
type Lease struct {
	Client  rueidis.Client
	Journal string        // the journal's key; the lease key derives from it
	TTL     time.Duration // how long a holder that stops renewing keeps it
	Owner   string        // optional name for the token (an instance id); a random part is always added
	Logger  *slog.Logger
}

// Key is the lease key (see LeaseKey).
func (l *Lease) Key() (string, error) { return LeaseKey(l.Journal) }

func (l *Lease) ttlMillis() (string, error) {
	if l.TTL < time.Millisecond {
		return "", fmt.Errorf("journal lease: TTL %v is under 1 ms", l.TTL)
	}
	return strconv.FormatInt(l.TTL.Milliseconds(), 10), nil
}

func (l *Lease) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

// Acquire takes the lease if nobody holds it. ok is false, with no error,
// when another holder has it.
func (l *Lease) Acquire(ctx context.Context) (token Token, ok bool, err error) {
	key, err := l.Key()
	if err != nil {
		return Token{}, false, err
	}
	ttl, err := l.ttlMillis()
	if err != nil {
		return Token{}, false, err
	}
	owner := newOwner(l.Owner)
	sent := time.Now()
	epoch, err := acquireScript.Exec(ctx, l.Client, []string{key, epochKey(key)}, []string{owner, ttl}).AsInt64()
	if err != nil {
		return Token{}, false, fmt.Errorf("journal lease %s: acquire: %w", key, err)
	}
	if epoch <= 0 {
		return Token{}, false, nil
	}
	return Token{Owner: owner, Epoch: epoch, sent: sent}, true, nil
}

// newOwner is name plus 64 random bits: unique per acquisition even across
// restarts of an instance with the same name. ':' is kept out of the name
// so the token's last ':' always precedes the epoch.
func newOwner(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	r := hex.EncodeToString(b[:])
	name = strings.ReplaceAll(name, ":", "_")
	if name == "" {
		return r
	}
	return name + "/" + r
}

// Renew extends the lease by TTL if token still holds it. false, with no
// error, means it is no longer ours (expired, taken, released).
func (l *Lease) Renew(ctx context.Context, token Token) (bool, error) {
	key, err := l.Key()
	if err != nil {
		return false, err
	}
	ttl, err := l.ttlMillis()
	if err != nil {
		return false, err
	}
	n, err := renewScript.Exec(ctx, l.Client, []string{key}, []string{token.String(), ttl}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("journal lease %s: renew: %w", key, err)
	}
	return n == 1, nil
}

// Release gives the lease up at once if token still holds it, so another
// instance can acquire without waiting for the TTL. Releasing a lease that
// is no longer ours does nothing.
func (l *Lease) Release(ctx context.Context, token Token) error {
	key, err := l.Key()
	if err != nil {
		return err
	}
	if err := releaseScript.Exec(ctx, l.Client, []string{key}, []string{token.String()}).Error(); err != nil {
		return fmt.Errorf("journal lease %s: release: %w", key, err)
	}
	return nil
}

// Hold renews token every TTL/3, on the calling goroutine, until ctx ends (it returns ctx's error and
// leaves the lease as it is: Release is the caller's choice) or until the
// lease is lost: then it calls onLost (if not nil) and returns
// ErrLeaseLost. Lost means Redis said the lease is not ours, or no renewal
// succeeded before the last good one's TTL ran out, counted from when that
// renewal was sent: a holder that cannot reach Redis gives up no later than
// Redis itself would let the key expire. Failed renewals are retried with
// backoff, each bounded by that deadline, so Hold never blocks past it.
func (l *Lease) Hold(ctx context.Context, token Token, onLost func()) error {
	if _, err := l.ttlMillis(); err != nil {
		return err
	}
	lost := func(why string) error {
		l.logger().Warn("journal lease lost", "journal", l.Journal, "token", token.String(), "why", why)
		if onLost != nil {
			onLost()
		}
		return ErrLeaseLost
	}
	every := max(l.TTL/3, time.Millisecond)
	// Renew at once; until that succeeds the lease is good only until the
	// acquisition's TTL runs out (for a token made by hand: from now).
	validUntil := time.Now().Add(l.TTL)
	if !token.sent.IsZero() {
		validUntil = token.sent.Add(l.TTL)
	}
	retry := streams.Backoff{Min: max(every/8, time.Millisecond), Max: every}
	wait := time.Duration(0)
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		sent := time.Now()
		if !sent.Before(validUntil) {
			return lost("no renewal within the TTL")
		}
		rctx, cancel := context.WithDeadline(ctx, validUntil)
		ok, err := l.Renew(rctx, token)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			l.logger().Warn("journal lease renewal failed", "journal", l.Journal, "err", err)
			wait = min(retry.Next(), max(time.Until(validUntil), 0))
		case !ok:
			return lost("held by another or expired")
		default:
			retry.Reset()
			validUntil = sent.Add(l.TTL)
			wait = every
		}
	}
}
