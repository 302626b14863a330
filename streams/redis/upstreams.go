package redis

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/keyflux/keyflux/streams"
	"github.com/redis/rueidis"
)

// Upstreams shares Redis subscriptions: every topic that needs the same
// channel or pattern joins one SUBSCRIBE or PSUBSCRIBE, so streams that
// differ only in their operators still cost Redis one subscription.
type Upstreams struct {
	Client  rueidis.Client
	Logger  *slog.Logger
	Metrics *Metrics

	mu       sync.Mutex
	live     map[string]*upstream
	stopping map[string]*upstream // unsubscribing, by channel
}

// Target names what an upstream subscribes to: a channel or a pattern.
type Target struct {
	Name    string
	Pattern bool // PSUBSCRIBE instead of SUBSCRIBE
	// Resync runs after every (re)subscription and before it is announced,
	// for example to re-apply keyspace flags a restarted Redis forgot.
	Resync func(context.Context) error
}

func (c Target) key() string {
	if c.Pattern {
		return "p " + c.Name
	}
	return "s " + c.Name
}

// Listener receives what an upstream delivers. Both functions run on the
// Redis connection's reader and must not block.
type Listener struct {
	// OnMessage is called for every message.
	OnMessage func(rueidis.PubSubMessage)
	// OnState is called with Ready once the subscription is live (at once
	// when joining a live one) and with Gap after each resubscription.
	OnState func(k streams.Kind, reason string)
}

// upstream is one Redis subscription and the listeners it serves.
type upstream struct {
	target Target
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	listeners []*Listener
	ready     bool
}

// Join adds l to the subscription of t, subscribing on first use. The
// returned leave removes l; the last one out unsubscribes.
func (u *Upstreams) Join(t Target, l *Listener) (leave func()) {
	key := t.key()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.live == nil {
		u.live = make(map[string]*upstream)
		u.stopping = make(map[string]*upstream)
	}
	up := u.live[key]
	if up == nil {
		ctx, cancel := context.WithCancel(context.Background())
		up = &upstream{target: t, cancel: cancel, done: make(chan struct{})}
		u.live[key] = up
		orUnregistered(u.Metrics).Upstream.Inc()
		// A previous subscription to the same channel may still be
		// unsubscribing; the new one waits for it, so that the old
		// UNSUBSCRIBE cannot cancel the new SUBSCRIBE on the shared connection.
		go u.run(ctx, up, u.stopping[key])
	}
	up.mu.Lock()
	up.listeners = append(up.listeners, l)
	if up.ready {
		l.OnState(streams.Ready, "")
	}
	up.mu.Unlock()

	var once sync.Once
	return func() { once.Do(func() { u.leave(up, l) }) }
}

func (u *Upstreams) leave(up *upstream, l *Listener) {
	u.mu.Lock()
	defer u.mu.Unlock()
	up.mu.Lock()
	up.listeners = slices.DeleteFunc(up.listeners, func(x *Listener) bool { return x == l })
	empty := len(up.listeners) == 0
	up.mu.Unlock()
	if empty {
		key := up.target.key()
		delete(u.live, key)
		orUnregistered(u.Metrics).Upstream.Dec()
		u.stopping[key] = up
		up.cancel()
	}
}

// Live returns how many Redis subscriptions are held.
func (u *Upstreams) Live() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.live)
}

func (up *upstream) command(c rueidis.Client) rueidis.Completed {
	if up.target.Pattern {
		return c.B().Psubscribe().Pattern(up.target.Name).Build()
	}
	return c.B().Subscribe().Channel(up.target.Name).Build()
}

func (up *upstream) unsubscribe(c rueidis.CommandClient) rueidis.Completed {
	if up.target.Pattern {
		return c.B().Punsubscribe().Pattern(up.target.Name).Build()
	}
	return c.B().Unsubscribe().Channel(up.target.Name).Build()
}

// run holds the subscription until ctx ends. rueidis resubscribes by itself
// after a reconnect; every confirmation after the first means messages may
// have been missed, which listeners hear as a Gap.
func (u *Upstreams) run(ctx context.Context, up *upstream, prev *upstream) {
	defer func() {
		u.mu.Lock()
		if u.stopping[up.target.key()] == up {
			delete(u.stopping, up.target.key())
		}
		u.mu.Unlock()
		close(up.done)
	}()
	if prev != nil {
		select {
		case <-prev.done:
		case <-ctx.Done():
			return
		}
	}
	logger := u.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var helpers sync.WaitGroup
	defer helpers.Wait()
	kind := "subscribe"
	if up.target.Pattern {
		kind = "psubscribe"
	}
	var confirmed atomic.Int64
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind != kind {
			return
		}
		first := confirmed.Add(1) == 1
		helpers.Add(1)
		go func() { // the hook runs on the connection's reader: never block it
			defer helpers.Done()
			if up.target.Resync != nil {
				if err := up.target.Resync(ctx); err != nil && ctx.Err() == nil {
					logger.Warn("resync after subscribing failed", "channel", up.target.Name, "err", err)
				}
			}
			up.announce(first)
		}()
	})
	// Receive does not unsubscribe when it returns: do it on the same
	// connection, or Redis would keep sending to nobody.
	hooked = rueidis.WithOnReceiveReturnHook(hooked, func(err error, c rueidis.CommandClient) error {
		if errors.Is(err, context.Canceled) {
			_ = c.Do(context.Background(), up.unsubscribe(c)).Error()
		}
		return err
	})
	var wait streams.Backoff
	for {
		err := u.Client.Receive(hooked, up.command(u.Client), up.deliver)
		if ctx.Err() != nil {
			return
		}
		logger.Warn("redis subscription lost; retrying", "channel", up.target.Name, "err", err)
		if !wait.Wait(ctx) {
			return
		}
	}
}

func (up *upstream) deliver(m rueidis.PubSubMessage) {
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, l := range up.listeners {
		l.OnMessage(m)
	}
}

func (up *upstream) announce(first bool) {
	up.mu.Lock()
	defer up.mu.Unlock()
	if first {
		up.ready = true
		for _, l := range up.listeners {
			l.OnState(streams.Ready, "")
		}
		return
	}
	for _, l := range up.listeners {
		l.OnState(streams.Gap, "Redis connection was re-established")
	}
}
