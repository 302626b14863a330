package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// NotifyMode says whether Keyflux may change notify-keyspace-events, like
// Spring Session's configure-action.
type NotifyMode string

const (
	// NotifyAuto reads notify-keyspace-events and adds the flags Keyflux
	// needs, never removing any; it does so again after every reconnect,
	// because a restarted Redis forgets a CONFIG SET.
	NotifyAuto NotifyMode = "auto"
	// NotifyNone never sends CONFIG, for managed Redis that forbids it; the
	// operator sets the flags (for example in a parameter group).
	NotifyNone NotifyMode = "none"
)

// ParseNotifyMode accepts "auto" or "none".
func ParseNotifyMode(s string) (NotifyMode, error) {
	switch m := NotifyMode(s); m {
	case NotifyAuto, NotifyNone:
		return m, nil
	}
	return "", fmt.Errorf("keyspace config mode %q: want auto or none", s)
}

// NotifyConfig keeps Redis's keyspace notification flags as Keyflux needs them.
type NotifyConfig struct {
	Client rueidis.Client
	Mode   NotifyMode
	Logger *slog.Logger
}

// allClasses are the event classes the flag "A" stands for (Redis 7 adds
// "d"; older servers accept "A" too).
const allClasses = "g$lshzxet"

// Needed returns the flags to append to have, a notify-keyspace-events
// value, so that keyspace events ("K") of every class ("A", or each of its
// letters) reach Keyflux; "" when nothing is missing. Flags are only ever
// added: other users of the Redis may rely on the rest.
func Needed(have string) string {
	var add string
	if !strings.Contains(have, "K") {
		add += "K"
	}
	if !strings.Contains(have, "A") && !containsAll(have, allClasses) {
		add += "A"
	}
	return add
}

func containsAll(s, chars string) bool {
	for _, c := range chars {
		if !strings.ContainsRune(s, c) {
			return false
		}
	}
	return true
}

// Ensure adds the missing flags in auto mode; in none mode it does nothing.
func (n *NotifyConfig) Ensure(ctx context.Context) error {
	if n.Mode != NotifyAuto {
		return nil
	}
	cfg, err := n.Client.Do(ctx, n.Client.B().ConfigGet().Parameter("notify-keyspace-events").Build()).AsStrMap()
	if err != nil {
		return fmt.Errorf("reading notify-keyspace-events (use keyspace config mode none where CONFIG is forbidden): %w", err)
	}
	have := cfg["notify-keyspace-events"]
	add := Needed(have)
	if add == "" {
		return nil
	}
	err = n.Client.Do(ctx, n.Client.B().ConfigSet().ParameterValue().
		ParameterValue("notify-keyspace-events", have+add).Build()).Error()
	if err != nil {
		return fmt.Errorf("setting notify-keyspace-events: %w", err)
	}
	n.logger().Info("keyspace notifications enabled", "notify-keyspace-events", have+add, "was", have)
	return nil
}

// Check runs at start-up: in auto mode it applies the flags, in none mode
// it probes whether notifications arrive and warns when they do not (a
// managed Redis is configured elsewhere, so that is not fatal).
func (n *NotifyConfig) Check(ctx context.Context, db int) error {
	if n.Mode == NotifyAuto {
		return n.Ensure(ctx)
	}
	ok, err := n.Probe(ctx, db, time.Second)
	switch {
	case err != nil:
		n.logger().Warn("keyspace config mode none: could not verify that keyspace notifications are on", "err", err)
	case !ok:
		n.logger().Warn("keyspace config mode none: keyspace notifications look disabled; " +
			"set notify-keyspace-events to include K and A (for example KA) in your Redis settings")
	}
	return nil
}

// Probe checks, without CONFIG, that keyspace notifications reach Keyflux:
// it writes a short-lived key of its own and waits for its "set" event.
func (n *NotifyConfig) Probe(ctx context.Context, db int, wait time.Duration) (bool, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	key := "keyflux:probe:" + hex.EncodeToString(nonce[:])
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var seen atomic.Bool
	errc := make(chan error, 1)
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind != "subscribe" {
			return
		}
		go func() { // not on the reader goroutine
			c := n.Client
			errc <- c.Do(ctx, c.B().Set().Key(key).Value("1").Px(wait).Build()).Error()
		}()
	})
	channel := "__keyspace@" + strconv.Itoa(db) + "__:" + key
	err := n.Client.Receive(hooked, n.Client.B().Subscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
		seen.Store(true)
		cancel()
	})
	select {
	case setErr := <-errc:
		if setErr != nil && !seen.Load() {
			return false, fmt.Errorf("writing probe key: %w", setErr)
		}
	default:
	}
	if seen.Load() {
		return true, nil
	}
	if ctx.Err() == context.DeadlineExceeded {
		return false, nil
	}
	return false, err
}

func (n *NotifyConfig) logger() *slog.Logger {
	if n.Logger != nil {
		return n.Logger
	}
	return slog.Default()
}
