package redis

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyflux/keyflux/streams"
	"github.com/redis/rueidis"
)

// Upstreams shares Redis subscriptions: every topic that needs the same
// channel or pattern joins one SUBSCRIBE or PSUBSCRIBE, so streams that
// differ only in their operators still cost Redis one subscription.
//
// Redis matches every message it publishes, keyspace notifications
// included, against every pattern of every client, on its main thread: a
// few thousand patterns slow every user of that Redis. So Upstreams holds at
// most MaxPatterns patterns, those still unsubscribing included. Past its
// budget a new pattern shares a broader one that provably covers it (a live
// pattern "<literal>*", its Target.Cover, or "*", whose slot is kept free),
// and its listeners get only the messages its own pattern matches, matched
// here with Redis's own glob (Match).
type Upstreams struct {
	Client  rueidis.Client
	Logger  *slog.Logger
	Metrics *Metrics
	// MaxPatterns bounds the PSUBSCRIBE patterns held at once; 0 means no
	// bound.
	MaxPatterns int

	mu       sync.Mutex
	live     map[string]*upstream
	stopping map[string]*upstream // unsubscribing, by channel
	patterns int                  // distinct patterns live or unsubscribing
	running  sync.WaitGroup       // subscriptions not yet unsubscribed
}

// universal is the last cover: it matches every channel but the empty one.
const universal = "*"

// Target names what an upstream subscribes to: a channel or a pattern.
type Target struct {
	Name    string
	Pattern bool // PSUBSCRIBE instead of SUBSCRIBE
	// Sharded is SSUBSCRIBE (Redis 7): on a cluster, the channel's slot
	// owner alone, followed when the slot moves (see run).
	Sharded bool
	// Cover is a broader pattern, "<literal>*" with Name starting with that
	// literal, shared by the pattern's family past MaxPatterns (for keyspace
	// streams, the database's __keyspace@<db>__:*). Empty, or one that does
	// not cover Name, means "*".
	Cover string
	// Resync runs after every (re)subscription and before it is announced,
	// for example to re-apply keyspace flags a restarted Redis forgot.
	Resync func(context.Context) error
}

func (c Target) key() string {
	if c.Sharded {
		return "S " + c.Name
	}
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

// upstream is one Redis subscription and the listeners it serves: its own
// target's, and those of the narrower patterns it covers.
type upstream struct {
	target Target
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	resync    func(context.Context) error
	listeners []*Listener
	covered   coverage
	// waiting hold listeners that joined once subscribed and wait for a
	// Resync this upstream did not run before; they get nothing before Ready.
	waiting    map[*Listener]bool
	subscribed bool // confirmed by Redis at least once
	ready      bool // Ready announced
	helpers    sync.WaitGroup
}

// Join adds l to the subscription of t, subscribing on first use. The
// returned leave removes l; the last one out unsubscribes.
func (u *Upstreams) Join(t Target, l *Listener) (leave func()) {
	if t.Pattern && t.Name == "" {
		// The empty pattern matches the empty channel only: subscribing to
		// that channel is the same and costs Redis no matching.
		t.Pattern = false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.live == nil {
		u.live = make(map[string]*upstream)
		u.stopping = make(map[string]*upstream)
	}
	up, covered := u.place(t)
	up.mu.Lock()
	if up.resync == nil && t.Resync != nil {
		up.resync = t.Resync // runs after every resubscription from now on
		if up.subscribed {   // but this one ran without it
			up.await(l, u.logger())
		}
	}
	if covered {
		up.covered.add(t.Name, l)
	} else {
		up.listeners = append(up.listeners, l)
	}
	if up.ready && !up.waiting[l] {
		l.OnState(streams.Ready, "")
	}
	up.mu.Unlock()

	var once sync.Once
	return func() { once.Do(func() { u.leave(up, t.Name, covered, l) }) }
}

// place finds or starts the upstream that serves t, and says whether it is
// a broader pattern covering t.
func (u *Upstreams) place(t Target) (*upstream, bool) {
	if up := u.live[t.key()]; up != nil {
		return up, false
	}
	if !t.Pattern || u.MaxPatterns <= 0 || u.patterns < u.exactPatterns() {
		return u.start(t), false
	}
	if up := u.liveCover(t.Name); up != nil {
		return up, true
	}
	cover := universal
	// The last slot stays free for "*", which covers every family.
	if t.Cover != "" && covers(t.Cover, t.Name) && u.patterns < u.MaxPatterns-1 {
		cover = t.Cover
	}
	return u.start(Target{Name: cover, Pattern: true, Resync: t.Resync}), true
}

// exactPatterns is how many patterns may be subscribed as they are; the
// rest of MaxPatterns is kept for covers.
func (u *Upstreams) exactPatterns() int {
	return u.MaxPatterns - max(1, u.MaxPatterns/4)
}

// liveCover is the live pattern "<literal>*" with the longest literal that
// starts name's literal prefix, if any: it delivers at least every message
// name matches, at no extra cost to Redis.
func (u *Upstreams) liveCover(name string) *upstream {
	lit := literalPrefix(name)
	for i := len(lit); i >= 0; i-- {
		if up := u.live["p "+lit[:i]+"*"]; up != nil {
			return up
		}
	}
	return nil
}

// start subscribes to t. A previous subscription to the same channel may
// still be unsubscribing; the new one waits for it, so that the old
// UNSUBSCRIBE cannot cancel the new SUBSCRIBE on the shared connection.
func (u *Upstreams) start(t Target) *upstream {
	key := t.key()
	if t.Pattern && u.stopping[key] == nil {
		u.patterns++
	}
	ctx, cancel := context.WithCancel(context.Background())
	up := &upstream{target: t, ctx: ctx, cancel: cancel, done: make(chan struct{}), resync: t.Resync}
	u.live[key] = up
	orUnregistered(u.Metrics).Upstream.Inc()
	u.running.Add(1)
	go func(prev *upstream) {
		defer u.running.Done()
		u.run(ctx, up, prev)
	}(u.stopping[key])
	return up
}

// Wait waits, at most timeout, until every subscription whose listeners
// have all left has sent its UNSUBSCRIBE: the client must not be closed
// under one, or rueidis could still be writing the command it recycles.
func (u *Upstreams) Wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		u.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (u *Upstreams) leave(up *upstream, name string, covered bool, l *Listener) {
	u.mu.Lock()
	defer u.mu.Unlock()
	up.mu.Lock()
	if covered {
		up.covered.remove(name, l)
	} else {
		up.listeners = slices.DeleteFunc(up.listeners, func(x *Listener) bool { return x == l })
	}
	delete(up.waiting, l)
	empty := len(up.listeners) == 0 && up.covered.empty()
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

// Patterns returns how many patterns are held in Redis, counting those
// still unsubscribing: never more than MaxPatterns when that is set.
func (u *Upstreams) Patterns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.patterns
}

func (u *Upstreams) logger() *slog.Logger {
	if u.Logger != nil {
		return u.Logger
	}
	return slog.Default()
}

// await holds back l, joining a subscribed upstream, until the Resync it
// brings has run once. Called with up.mu held.
func (up *upstream) await(l *Listener, logger *slog.Logger) {
	if up.waiting == nil {
		up.waiting = make(map[*Listener]bool)
	}
	up.waiting[l] = true
	resync := up.resync
	up.helpers.Add(1)
	go func() {
		defer up.helpers.Done()
		if err := resync(up.ctx); err != nil && up.ctx.Err() == nil {
			logger.Warn("resync after joining a subscription failed", "channel", up.target.Name, "err", err)
		}
		up.mu.Lock()
		defer up.mu.Unlock()
		if up.waiting[l] {
			delete(up.waiting, l)
			l.OnState(streams.Ready, "")
		}
	}()
}

func (up *upstream) command(c rueidis.Client) rueidis.Completed {
	if up.target.Sharded {
		return c.B().Ssubscribe().Channel(up.target.Name).Build()
	}
	if up.target.Pattern {
		return c.B().Psubscribe().Pattern(up.target.Name).Build()
	}
	return c.B().Subscribe().Channel(up.target.Name).Build()
}

func (up *upstream) unsubscribe(c rueidis.CommandClient) rueidis.Completed {
	if up.target.Sharded {
		return c.B().Sunsubscribe().Channel(up.target.Name).Build()
	}
	if up.target.Pattern {
		return c.B().Punsubscribe().Pattern(up.target.Name).Build()
	}
	return c.B().Unsubscribe().Channel(up.target.Name).Build()
}

// run holds the subscription until ctx ends. rueidis resubscribes by itself
// after a reconnect; every confirmation after the first means messages may
// have been missed, which listeners hear as a Gap. A sharded subscription
// also ends when its slot leaves the node (Redis sends sunsubscribe and
// Receive returns nil): the loop subscribes again, and rueidis, following
// MOVED, reaches the slot's new owner.
func (u *Upstreams) run(ctx context.Context, up *upstream, prev *upstream) {
	defer func() {
		u.mu.Lock()
		key := up.target.key()
		if u.stopping[key] == up {
			delete(u.stopping, key)
		}
		if up.target.Pattern && u.live[key] == nil && u.stopping[key] == nil {
			u.patterns-- // unsubscribed, and not subscribed again meanwhile
		}
		u.mu.Unlock()
		close(up.done)
	}()
	if prev != nil {
		// Even when cancelled meanwhile: exits in order keep the count of
		// patterns right.
		<-prev.done
		if ctx.Err() != nil {
			return
		}
	}
	logger := u.logger()
	defer up.helpers.Wait()
	kind := "subscribe"
	if up.target.Pattern {
		kind = "psubscribe"
	}
	if up.target.Sharded {
		kind = "ssubscribe"
	}
	var confirmed atomic.Int64
	var moved atomic.Bool // the last Receive ended because a sharded slot moved
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind != kind {
			return
		}
		first := confirmed.Add(1) == 1
		up.mu.Lock()
		up.subscribed = true
		resync := up.resync
		up.helpers.Add(1)
		up.mu.Unlock()
		go func() { // the hook runs on the connection's reader: never block it
			defer up.helpers.Done()
			if resync != nil {
				if err := resync(ctx); err != nil && ctx.Err() == nil {
					logger.Warn("resync after subscribing failed", "channel", up.target.Name, "err", err)
				}
			}
			reason := "Redis connection was re-established"
			if moved.Swap(false) {
				reason = "the sharded channel's slot moved to another node"
			}
			up.announce(first, reason)
		}()
	})
	// Receive does not unsubscribe when it returns: do it on the same
	// connection, or Redis would keep sending to nobody. Not in the hook,
	// though: it runs before Receive lets go of the 16-slot channel the
	// connection's reader fills, so a burst would block that reader before
	// it reads the reply, and every user of the connection with it. Once
	// Receive has returned, rueidis drains and drops the channel's messages.
	var conn rueidis.CommandClient
	hooked = rueidis.WithOnReceiveReturnHook(hooked, func(err error, c rueidis.CommandClient) error {
		if errors.Is(err, context.Canceled) {
			conn = c
		}
		return err
	})
	var wait streams.Backoff
	for {
		err := u.Client.Receive(hooked, up.command(u.Client), up.deliver)
		if ctx.Err() != nil {
			if conn != nil { // done before up.done: see start
				_ = conn.Do(context.Background(), up.unsubscribe(conn)).Error()
			}
			return
		}
		if err == nil && up.target.Sharded {
			moved.Store(true) // until the next confirmation says so
			logger.Info("sharded channel's slot moved; subscribing on its new owner", "channel", up.target.Name)
		} else {
			logger.Warn("redis subscription lost; retrying", "channel", up.target.Name, "err", err)
		}
		if !wait.Wait(ctx) {
			return
		}
	}
}

func (up *upstream) deliver(m rueidis.PubSubMessage) {
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, l := range up.listeners {
		if !up.waiting[l] {
			l.OnMessage(m)
		}
	}
	up.covered.deliver(m, up.waiting)
}

func (up *upstream) announce(first bool, gap string) {
	up.mu.Lock()
	defer up.mu.Unlock()
	state, reason := streams.Gap, gap
	if first {
		up.ready = true
		state, reason = streams.Ready, ""
	}
	up.each(func(l *Listener) {
		if !up.waiting[l] { // their Ready is still to come
			l.OnState(state, reason)
		}
	})
}

// each calls f for every listener, covered ones included.
func (up *upstream) each(f func(*Listener)) {
	for _, l := range up.listeners {
		f(l)
	}
	up.covered.each(f)
}
