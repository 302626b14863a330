package redis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
)

// ClusterUpstreams holds a subscription on every master of a Redis Cluster
// for each target, merged into one flow: keyspace notifications are
// emitted only by the node that owns the key, so a pattern must be
// subscribed on every master, and on masters only (a replica emits its own
// events for what it replicates: "del" where its master said "expired").
//
// Each master has its own Upstreams, on a connection of its own, so the
// pattern budget (MaxPatterns) holds per node. When the topology changes a
// master that is gone or demoted is retired first (its messages are dropped
// from that moment, then it unsubscribes), then the new masters are joined;
// once they confirm, the streams whose keys could live in the slots
// concerned get one Gap: so no event is delivered twice, and every one
// that could have been missed is covered by a reset.
type ClusterUpstreams struct {
	Topology    *Topology
	Logger      *slog.Logger
	Metrics     *Metrics
	MaxPatterns int
	// Resync, when set, replaces a target's Resync on each master: it
	// prepares that node only (its notify-keyspace-events).
	Resync func(ctx context.Context, addr string) error

	mu       sync.Mutex
	nodes    map[string]*nodeUpstreams
	joins    map[*clusterJoin]struct{}
	unwatch  func()
	closing  chan struct{} // closed by Close: ends redials
	retiring sync.WaitGroup
}

// nodeUpstreams are the subscriptions held on one master.
type nodeUpstreams struct {
	addr   string
	client rueidis.Client
	ups    *Upstreams
}

// NodeListener receives what a cluster-wide subscription delivers, with
// the address of the node each message came from. Both functions run on a
// Redis connection's reader and must not block.
type NodeListener struct {
	OnMessage func(node string, m rueidis.PubSubMessage)
	// OnState gets Ready once every master confirmed, and Gap when events
	// may have been missed (a reconnect, a topology change).
	OnState func(k streams.Kind, reason string)
}

type clusterJoin struct {
	t Target
	l *NodeListener

	mu        sync.Mutex
	legs      map[string]*leg // by master address
	announced bool            // Ready sent
	owed      string          // a Gap to send once every leg is ready again
	closed    bool
}

// leg is a join's subscription on one master.
type leg struct {
	addr    string
	retired atomic.Bool
	ready   bool // guarded by the join's mu
	leave   func()
}

// Join subscribes t on every master and merges what they send into l. The
// returned leave unsubscribes everywhere.
func (c *ClusterUpstreams) Join(t Target, l *NodeListener) (leave func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joins == nil {
		c.joins = make(map[*clusterJoin]struct{})
		c.nodes = make(map[string]*nodeUpstreams)
		c.closing = make(chan struct{})
		c.unwatch = c.Topology.Watch(c.onChange)
	}
	j := &clusterJoin{t: t, l: l, legs: make(map[string]*leg)}
	c.joins[j] = struct{}{}
	masters := c.Topology.Layout().Masters()
	legs := make([]*leg, len(masters))
	j.mu.Lock()
	for i, addr := range masters { // all in place before any can be Ready
		legs[i] = &leg{addr: addr}
		j.legs[addr] = legs[i]
	}
	j.mu.Unlock()
	for _, lg := range legs {
		c.subscribe(j, lg)
	}
	var once sync.Once
	return func() { once.Do(func() { c.leave(j) }) }
}

func (c *ClusterUpstreams) leave(j *clusterJoin) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.joins, j)
	j.mu.Lock()
	j.closed = true
	legs := j.legs
	j.legs = nil
	j.mu.Unlock()
	for _, lg := range legs {
		lg.retired.Store(true)
		if lg.leave != nil {
			lg.leave()
		}
	}
}

// subscribe subscribes lg, already one of j's legs, on its master. A
// master with no connection yet is dialled in the background (a dead one
// takes the dial timeout to refuse), and again until it answers or leaves.
// Called with c.mu held, never j.mu (the node's Upstreams may call back at
// once).
func (c *ClusterUpstreams) subscribe(j *clusterJoin, lg *leg) {
	n := c.nodes[lg.addr]
	if n == nil {
		if c.closed() {
			return
		}
		c.retiring.Add(1)
		go c.dial(j, lg)
		return
	}
	addr := lg.addr
	t := j.t
	if t.Resync != nil && c.Resync != nil {
		t.Resync = func(ctx context.Context) error { return c.Resync(ctx, addr) }
	}
	lg.leave = n.ups.Join(t, &Listener{
		OnMessage: func(m rueidis.PubSubMessage) {
			if !lg.retired.Load() {
				j.l.OnMessage(addr, m)
			}
		},
		OnState: func(k streams.Kind, reason string) { j.state(lg, k, reason) },
	})
}

// dial connects lg's master, retrying until lg is retired or c closes,
// then subscribes lg.
func (c *ClusterUpstreams) dial(j *clusterJoin, lg *leg) {
	defer c.retiring.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := streams.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		client, err := c.Topology.Dial(lg.addr)
		c.mu.Lock()
		if lg.retired.Load() || c.closed() {
			c.mu.Unlock()
			if client != nil {
				client.Close()
			}
			return
		}
		if err == nil || c.nodes[lg.addr] != nil {
			if c.nodes[lg.addr] == nil {
				c.addNode(lg.addr, client)
			} else if client != nil {
				client.Close() // another leg was quicker
			}
			c.subscribe(j, lg)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.logger().Warn("cannot reach a cluster master to subscribe; retrying", "node", lg.addr, "err", err)
		c.Topology.Rescan()
		if !wait.Wait(ctx) {
			return
		}
	}
}

// state merges one leg's state into the join's.
func (j *clusterJoin) state(lg *leg, k streams.Kind, reason string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || lg.retired.Load() {
		return
	}
	switch k {
	case streams.Ready:
		lg.ready = true
		j.settle()
	case streams.Gap:
		if j.announced {
			j.l.OnState(streams.Gap, reason+" (node "+lg.addr+")")
		}
	}
}

// settle announces Ready, or the Gap owed, once every leg is ready. Called
// with j.mu held.
func (j *clusterJoin) settle() {
	for _, lg := range j.legs {
		if !lg.ready {
			return
		}
	}
	if !j.announced {
		j.announced = true
		j.owed = "" // nothing was promised before Ready
		j.l.OnState(streams.Ready, "")
		return
	}
	if j.owed != "" {
		j.l.OnState(streams.Gap, j.owed)
		j.owed = ""
	}
}

// concerned reports whether a change that may have lost the events of the
// slots in lost concerns the target: its pattern may match a key hashed
// to one of them.
func concerned(t Target, lost *SlotSet) bool {
	if lost.Empty() {
		return false
	}
	// Keyspace channels are "__keyspace@<db>__:<key>": the key is the part
	// after the first colon.
	_, key, ok := strings.Cut(t.Name, ":")
	if !ok {
		return true
	}
	if !t.Pattern {
		return lost.Has(KeySlot(key))
	}
	if slot, ok := PatternSlot(key); ok {
		return lost.Has(slot)
	}
	return true
}

// onChange follows a topology change: retire, then join, then owe resets.
func (c *ClusterUpstreams) onChange(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	masters := ch.New.Masters()
	detail := "cluster topology changed: " + ch.Describe()
	for j := range c.joins {
		j.mu.Lock()
		var gone []*leg
		for addr, lg := range j.legs {
			if !slices.Contains(masters, addr) {
				lg.retired.Store(true) // its messages are dropped from now on
				gone = append(gone, lg)
				delete(j.legs, addr)
			}
		}
		if j.announced && concerned(j.t, &ch.Lost) {
			j.owed = detail
		}
		var added []*leg
		for _, addr := range masters {
			if j.legs[addr] == nil {
				lg := &leg{addr: addr}
				j.legs[addr] = lg // not ready: holds back the Gap owed
				added = append(added, lg)
			}
		}
		j.mu.Unlock()
		for _, lg := range gone {
			if lg.leave != nil {
				lg.leave()
			}
		}
		for _, lg := range added {
			c.subscribe(j, lg)
		}
		j.mu.Lock()
		if !j.closed {
			j.settle() // a change that only removed masters owes its Gap now
		}
		j.mu.Unlock()
	}
	for addr, n := range c.nodes {
		if !slices.Contains(masters, addr) {
			delete(c.nodes, addr)
			c.retiring.Add(1)
			go func() { // after its last PUNSUBSCRIBE
				defer c.retiring.Done()
				n.ups.Wait(5 * time.Second)
				n.client.Close()
			}()
		}
	}
}

// closed reports whether Close has begun. Called with c.mu held.
func (c *ClusterUpstreams) closed() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// addNode makes the Upstreams of master addr on client. Called with c.mu
// held.
func (c *ClusterUpstreams) addNode(addr string, client rueidis.Client) {
	client = rescanOnLoss{Client: client, t: c.Topology}
	c.nodes[addr] = &nodeUpstreams{addr: addr, client: client,
		ups: &Upstreams{Client: client, Logger: c.logger().With("node", addr), Metrics: c.Metrics, MaxPatterns: c.MaxPatterns}}
}

// rescanOnLoss asks for a rescan when a subscription ends by itself: its
// node may have died or been demoted.
type rescanOnLoss struct {
	rueidis.Client
	t *Topology
}

func (r rescanOnLoss) Receive(ctx context.Context, cmd rueidis.Completed, fn func(rueidis.PubSubMessage)) error {
	err := r.Client.Receive(ctx, cmd, fn)
	if err != nil && ctx.Err() == nil {
		r.t.Rescan()
	}
	return err
}

// Ready reports a master that a subscription, once confirmed everywhere,
// is not confirmed on now (one still subscribing for the first time is
// not a fault).
func (c *ClusterUpstreams) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	for _, addr := range c.Topology.Layout().Masters() {
		for j := range c.joins {
			j.mu.Lock()
			lg := j.legs[addr]
			ok := !j.announced || lg != nil && lg.ready
			j.mu.Unlock()
			if !ok {
				missing = append(missing, addr)
				break
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("keyspace subscriptions not confirmed on cluster master %s", strings.Join(missing, ", "))
	}
	return nil
}

// Subscriptions is how many subscriptions each master holds.
func (c *ClusterUpstreams) Subscriptions() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.nodes))
	for addr, n := range c.nodes {
		out[addr] = n.ups.Live()
	}
	return out
}

// Close waits, at most timeout per node, for the last unsubscriptions and
// closes the node connections. Call it once every stream is closed.
func (c *ClusterUpstreams) Close(timeout time.Duration) {
	c.mu.Lock()
	if c.unwatch != nil {
		c.unwatch()
		close(c.closing)
	}
	nodes := c.nodes
	c.nodes = nil
	c.mu.Unlock()
	for _, n := range nodes {
		n.ups.Wait(timeout)
		n.client.Close()
	}
	c.retiring.Wait()
}

func (c *ClusterUpstreams) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}
