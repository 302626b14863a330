package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
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

// NotifyConfig keeps Redis's keyspace notification flags as Keyflux needs
// them. Anyone may switch them off with CONFIG SET, and Redis tells no
// subscriber: so while keyspace streams are live it checks them every
// Interval. In auto mode it restores them; in none mode it probes whether
// notifications still arrive, and Problem says why not for /readyz and for
// the "connected" event. Either way, a keyspace stream that may have missed
// events gets a reset (streams.ResetNotifyConfig).
type NotifyConfig struct {
	Client rueidis.Client
	Mode   NotifyMode
	Logger *slog.Logger
	// Interval is how often the flags are checked while keyspace streams
	// are live, and how old a check Ready trusts (5 s when 0).
	Interval time.Duration
	// DB is where mode none writes its probe key.
	DB      int
	Metrics *NotifyMetrics // may be nil
	// Topology, on a Redis Cluster, names the nodes: auto mode applies the
	// flags on every node, replicas included (a promoted replica must
	// already have them) and on nodes that join later; none mode probes
	// every master.
	Topology *Topology

	check    sync.Mutex      // one CONFIG round or probe at a time
	verified map[string]bool // nodes whose flags were seen in place once (guarded by check)
	unwatch  func()          // stops following the topology

	refresh   sync.Mutex // one check on behalf of Ready at a time
	attempted time.Time  // when Ready last checked (guarded by refresh)

	mu      sync.Mutex
	live    map[*pump]struct{} // keyspace streams, reset when events were missed
	stop    context.CancelFunc // ends the periodic check; nil while no stream is live
	checked time.Time          // when the flags were last found on or off
	problem string             // why keyspace events do not arrive; "" when they do
}

// NotifyMetrics count what NotifyConfig finds.
type NotifyMetrics struct {
	Missing  prometheus.Gauge
	Restored prometheus.Counter
}

// NewNotifyMetrics creates the collectors, registered with reg unless it is nil.
func NewNotifyMetrics(reg prometheus.Registerer) *NotifyMetrics {
	f := promauto.With(reg)
	return &NotifyMetrics{
		Missing: f.NewGauge(prometheus.GaugeOpts{
			Name: "keyflux_keyspace_notifications_missing",
			Help: "1 while the last check found keyspace notifications off (mode none, or auto mode unable to restore them).",
		}),
		Restored: f.NewCounter(prometheus.CounterOpts{
			Name: "keyflux_keyspace_config_restored_total",
			Help: "Times auto mode found notify-keyspace-events changed by someone else and restored it.",
		}),
	}
}

var unregisteredNotify = NewNotifyMetrics(nil)

func (n *NotifyConfig) metrics() *NotifyMetrics {
	if n.Metrics == nil {
		return unregisteredNotify
	}
	return n.Metrics
}

func (n *NotifyConfig) interval() time.Duration {
	if n.Interval <= 0 {
		return 5 * time.Second
	}
	return n.Interval
}

// probeWait bounds how long mode none waits for its probe key's event.
const probeWait = time.Second

// probePrefix starts the probe keys, which keyspace streams leave out.
const probePrefix = "keyflux:probe:"

// disabledNone is the problem mode none reports when its probe gets no event.
const disabledNone = "keyspace notifications look disabled (keyspace config mode none): " +
	"set notify-keyspace-events to include K and A (for example KA) in your Redis settings"

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

// Ensure adds the missing flags in auto mode, on every node of a cluster;
// in none mode it does nothing. Flags found missing after they were once in
// place were switched off by someone else: keyspace streams missed events
// and are reset.
func (n *NotifyConfig) Ensure(ctx context.Context) error {
	if n.Mode != NotifyAuto {
		return nil
	}
	if n.Topology == nil {
		n.check.Lock()
		defer n.check.Unlock()
		return n.ensureOn(ctx, n.Client, "", true, true)
	}
	l := n.Topology.Layout()
	masters := l.Masters()
	var errs []error
	for _, addr := range l.Nodes() {
		if err := n.ensureNode(ctx, addr, slices.Contains(masters, addr), true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// EnsureNode is Ensure on one node of a cluster (a master just
// subscribed); a problem found elsewhere stays reported.
func (n *NotifyConfig) EnsureNode(ctx context.Context, addr string) error {
	if n.Mode != NotifyAuto || n.Topology == nil {
		return n.Ensure(ctx)
	}
	return n.ensureNode(ctx, addr, slices.Contains(n.Topology.Layout().Masters(), addr), false)
}

func (n *NotifyConfig) ensureNode(ctx context.Context, addr string, master, clear bool) error {
	c, err := n.Topology.Node(addr)
	if err != nil {
		return err
	}
	n.check.Lock()
	defer n.check.Unlock()
	return n.ensureOn(ctx, c, addr, master, clear)
}

// ensureOn reads and completes the flags of the node c is connected to.
// Only a restore on a master resets streams: a replica's own events are
// never subscribed. clear lets a success clear a reported problem. Called
// with n.check held.
func (n *NotifyConfig) ensureOn(ctx context.Context, c rueidis.Client, addr string, master, clear bool) error {
	if n.verified == nil {
		n.verified = make(map[string]bool)
	}
	cfg, err := c.Do(ctx, c.B().ConfigGet().Parameter("notify-keyspace-events").Build()).AsStrMap()
	if err != nil {
		return fmt.Errorf("reading notify-keyspace-events (use keyspace config mode none where CONFIG is forbidden): %w", err)
	}
	have := cfg["notify-keyspace-events"]
	add := Needed(have)
	logger := n.logger()
	if addr != "" {
		logger = logger.With("node", addr)
	}
	if add == "" {
		n.verified[addr] = true
		if clear {
			n.report("")
		}
		return nil
	}
	err = c.Do(ctx, c.B().ConfigSet().ParameterValue().
		ParameterValue("notify-keyspace-events", have+add).Build()).Error()
	if err != nil {
		where := ""
		if addr != "" {
			where = " on " + addr
		}
		n.report("notify-keyspace-events" + where + " is " + strconv.Quote(have) + ", without " + add + ", and could not be restored: " + err.Error())
		return fmt.Errorf("setting notify-keyspace-events: %w", err)
	}
	if !n.verified[addr] {
		n.verified[addr] = true
		logger.Info("keyspace notifications enabled", "notify-keyspace-events", have+add, "was", have)
		if clear {
			n.report("")
		}
		return nil
	}
	n.metrics().Restored.Inc()
	reset := 0
	if master {
		reset = n.resetLive("notify-keyspace-events was " + strconv.Quote(have) + "; Keyflux restored " + strconv.Quote(have+add))
	}
	logger.Warn("notify-keyspace-events lost flags Keyflux needs (a CONFIG SET by someone, or a Redis restart); restored them",
		"notify-keyspace-events", have+add, "was", have, "streams_reset", reset)
	if clear {
		n.report("")
	}
	return nil
}

// follow applies the flags (auto mode) on every node that joins the
// cluster, replicas included, so that one promoted later already has them.
func (n *NotifyConfig) follow() {
	if n.Topology == nil || n.Mode != NotifyAuto {
		return
	}
	n.unwatch = n.Topology.Watch(func(ch Change) {
		masters := ch.New.Masters()
		for _, addr := range ch.NewNodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := n.ensureNode(ctx, addr, slices.Contains(masters, addr), false); err != nil {
				n.logger().Warn("cannot apply keyspace notification flags on a new cluster node", "node", addr, "err", err)
			}
			cancel()
		}
	})
}

func (n *NotifyConfig) unfollow() {
	if n.unwatch != nil {
		n.unwatch()
	}
}

// Check runs at start-up: in auto mode it applies the flags, in none mode
// it probes whether notifications arrive and warns when they do not (a
// managed Redis is configured elsewhere, so that is not fatal).
func (n *NotifyConfig) Check(ctx context.Context) error {
	if n.Mode == NotifyAuto {
		return n.Ensure(ctx)
	}
	n.probe(ctx)
	return nil
}

// probe is mode none's check: notifications are on when the probe key's
// event arrives.
func (n *NotifyConfig) probe(ctx context.Context) {
	n.check.Lock()
	defer n.check.Unlock()
	if n.Topology != nil {
		n.probeCluster(ctx)
		return
	}
	ok, err := n.Probe(ctx, n.DB, probeWait)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			n.logger().Warn("keyspace config mode none: could not verify that keyspace notifications are on", "err", err)
		}
	case !ok:
		n.report(disabledNone)
	default:
		n.report("")
	}
}

// probeCluster probes every master with a key of a slot it owns, through
// its own connection: each node emits only its own keys' events. Called
// with n.check held.
func (n *NotifyConfig) probeCluster(ctx context.Context) {
	l := n.Topology.Layout()
	var off []string
	for _, s := range l.Shards {
		c, err := n.Topology.Node(s.Master)
		key, found := probeKeyOn(l, s.Master)
		if err == nil && !found {
			continue // a master with no slot holds no key to watch
		}
		ok := false
		if err == nil {
			ok, err = probeWith(ctx, c, n.DB, key, probeWait)
		}
		if err != nil {
			if ctx.Err() == nil {
				n.logger().Warn("keyspace config mode none: could not verify that keyspace notifications are on", "node", s.Master, "err", err)
			}
			return
		}
		if !ok {
			off = append(off, s.Master)
		}
	}
	if len(off) > 0 {
		n.report(disabledNone + " (on cluster master " + strings.Join(off, ", ") + ")")
		return
	}
	n.report("")
}

// probeKeyOn is a fresh probe key whose slot master owns, by its hash tag.
func probeKeyOn(l Layout, master string) (string, bool) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	for i := range 1 << 16 {
		tag := "{" + strconv.Itoa(i) + "}"
		if l.Owner(KeySlot(tag)) == master {
			return probePrefix + hex.EncodeToString(nonce[:]) + tag, true
		}
	}
	return "", false
}

// recheck checks the flags now, as the mode says.
func (n *NotifyConfig) recheck(ctx context.Context) {
	if n.Mode != NotifyAuto {
		n.probe(ctx)
		return
	}
	if err := n.Ensure(ctx); err != nil && ctx.Err() == nil {
		n.logger().Warn("checking keyspace notification flags failed", "err", err)
	}
}

// report records what a check found and says so once when it changes.
// Notifications back on after a problem mean events were missed: keyspace
// streams are reset. Called with n.check held.
func (n *NotifyConfig) report(problem string) {
	n.mu.Lock()
	was := n.problem
	n.problem, n.checked = problem, time.Now()
	n.mu.Unlock()
	if problem != "" {
		n.metrics().Missing.Set(1)
	} else {
		n.metrics().Missing.Set(0)
	}
	switch {
	case problem == was:
	case problem != "":
		n.logger().Warn(problem)
	default:
		reset := n.resetLive("keyspace notifications were off")
		n.logger().Info("keyspace notifications are on again", "streams_reset", reset)
	}
}

// stale reports whether the last finding is older than Interval.
func (n *NotifyConfig) stale() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Since(n.checked) >= n.interval()
}

// Problem says why keyspace events are not arriving, "" when nothing is known
// to be wrong.
func (n *NotifyConfig) Problem() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.problem
}

// Ready returns the problem as an error, checking first when the last check
// is older than Interval (no keyspace stream is live to keep it fresh).
func (n *NotifyConfig) Ready(ctx context.Context) error {
	if n.stale() {
		// Anyone may call /readyz: concurrent calls share one check (those
		// that waited find it fresh), and a failed one is not retried
		// before Interval either, so Redis sees at most one per Interval.
		n.refresh.Lock()
		if n.stale() && time.Since(n.attempted) >= n.interval() {
			n.attempted = time.Now()
			n.recheck(ctx)
		}
		n.refresh.Unlock()
	}
	if p := n.Problem(); p != "" {
		return errors.New(p)
	}
	return nil
}

// track makes p, a keyspace stream's pump, one to reset when events were
// missed; the first one starts the periodic check, and the returned untrack
// of the last one stops it: nothing runs while no keyspace stream is live.
func (n *NotifyConfig) track(p *pump) (untrack func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live == nil {
		n.live = make(map[*pump]struct{})
	}
	n.live[p] = struct{}{}
	if n.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		n.stop = cancel
		go n.watch(ctx)
	}
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.live, p)
		if len(n.live) == 0 && n.stop != nil {
			n.stop()
			n.stop = nil
		}
	}
}

func (n *NotifyConfig) watch(ctx context.Context) {
	tick := time.NewTicker(n.interval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.recheck(ctx)
		}
	}
}

// resetLive owes every live keyspace stream a reset; it returns how many.
func (n *NotifyConfig) resetLive(detail string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p := range n.live {
		p.owe(streams.Event{Kind: streams.Gap, Code: streams.ResetNotifyConfig, Reason: detail})
	}
	return len(n.live)
}

// Probe checks, without CONFIG, that keyspace notifications reach Keyflux:
// it writes a short-lived key of its own and waits for its "set" event.
func (n *NotifyConfig) Probe(ctx context.Context, db int, wait time.Duration) (bool, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	return probeWith(ctx, n.Client, db, probePrefix+hex.EncodeToString(nonce[:]), wait)
}

// probeWith subscribes to key's keyspace channel on c, writes key through
// c and waits for its event.
func probeWith(ctx context.Context, c rueidis.Client, db int, key string, wait time.Duration) (bool, error) {
	channel := "__keyspace@" + strconv.Itoa(db) + "__:" + key
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var seen atomic.Bool
	errc := make(chan error, 1)
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind != "subscribe" {
			return
		}
		go func() { // not on the reader goroutine
			errc <- c.Do(ctx, c.B().Set().Key(key).Value("1").Px(wait).Build()).Error()
		}()
	})
	// Receive does not unsubscribe when it returns: do it on the same
	// connection, or every probe would leave a subscription behind.
	hooked = rueidis.WithOnReceiveReturnHook(hooked, func(err error, c rueidis.CommandClient) error {
		_ = c.Do(context.Background(), c.B().Unsubscribe().Channel(channel).Build()).Error()
		return err
	})
	err := c.Receive(hooked, c.B().Subscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
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
