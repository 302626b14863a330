package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// SlotRange is an inclusive range of hash slots.
type SlotRange struct{ From, To int }

// Shard is one master of a cluster, the slots it owns and its replicas.
type Shard struct {
	Master   string // host:port
	Slots    []SlotRange
	Replicas []string
}

// SlotCount is how many slots the shard owns.
func (s Shard) SlotCount() int {
	n := 0
	for _, r := range s.Slots {
		n += r.To - r.From + 1
	}
	return n
}

// Layout is a cluster's topology as one node reported it (CLUSTER SHARDS):
// the online masters, sorted by address. A single Redis is one master
// owning every slot.
type Layout struct {
	Shards []Shard
}

// Masters are the masters' addresses, sorted.
func (l Layout) Masters() []string {
	out := make([]string, len(l.Shards))
	for i, s := range l.Shards {
		out[i] = s.Master
	}
	return out
}

// Nodes are every node's address, masters and replicas.
func (l Layout) Nodes() []string {
	var out []string
	for _, s := range l.Shards {
		out = append(out, s.Master)
		out = append(out, s.Replicas...)
	}
	return out
}

// Shard returns the shard whose master is addr.
func (l Layout) Shard(addr string) (Shard, bool) {
	for _, s := range l.Shards {
		if s.Master == addr {
			return s, true
		}
	}
	return Shard{}, false
}

// Covered is how many slots have an online master.
func (l Layout) Covered() int {
	n := 0
	for _, s := range l.Shards {
		n += s.SlotCount()
	}
	return n
}

// Owner is the master that owns slot, "" when none does.
func (l Layout) Owner(slot int) string {
	for _, s := range l.Shards {
		for _, r := range s.Slots {
			if slot >= r.From && slot <= r.To {
				return s.Master
			}
		}
	}
	return ""
}

func (l Layout) equal(o Layout) bool {
	return slices.EqualFunc(l.Shards, o.Shards, func(a, b Shard) bool {
		return a.Master == b.Master && slices.Equal(a.Slots, b.Slots) && slices.Equal(a.Replicas, b.Replicas)
	})
}

// String is the layout for a log line: each master with its slot count
// and replicas.
func (l Layout) String() string {
	var b strings.Builder
	for i, s := range l.Shards {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d slots", s.Master, s.SlotCount())
		if len(s.Replicas) > 0 {
			fmt.Fprintf(&b, " replicas %s", strings.Join(s.Replicas, ","))
		}
	}
	return b.String()
}

// SlotSet is a set of hash slots.
type SlotSet [Slots / 64]uint64

func (s *SlotSet) add(r SlotRange) {
	for i := max(r.From, 0); i <= r.To && i < Slots; i++ {
		s[i/64] |= 1 << (i % 64)
	}
}

// Has reports whether slot is in the set.
func (s *SlotSet) Has(slot int) bool {
	return slot >= 0 && slot < Slots && s[slot/64]&(1<<(slot%64)) != 0
}

// Empty reports whether no slot is in the set.
func (s *SlotSet) Empty() bool {
	for _, w := range s {
		if w != 0 {
			return false
		}
	}
	return true
}

// Change is what a rescan found different from the layout before.
type Change struct {
	Old, New Layout
	// Added are masters now that were not masters before (a promoted
	// replica, a new node); Removed are masters before that are gone or
	// demoted.
	Added, Removed []string
	// NewNodes are nodes, replicas included, not in the old layout.
	NewNodes []string
	// Lost are the slots whose events may have been missed: those of the
	// removed masters (as they were) and of the added ones (as they are).
	Lost SlotSet
	// Moved says that some slot changed owner among masters in both layouts.
	Moved bool
}

// Describe says what changed, for a log line and a reset's detail.
func (c Change) Describe() string {
	var parts []string
	if len(c.Removed) > 0 {
		parts = append(parts, "master "+strings.Join(c.Removed, ",")+" gone or demoted")
	}
	if len(c.Added) > 0 {
		parts = append(parts, "master "+strings.Join(c.Added, ",")+" added or promoted")
	}
	if c.Moved {
		parts = append(parts, "slots moved")
	}
	if len(parts) == 0 {
		return "replicas changed"
	}
	return strings.Join(parts, ", ")
}

func diff(old, cur Layout) Change {
	c := Change{Old: old, New: cur}
	for _, s := range old.Shards {
		if _, ok := cur.Shard(s.Master); !ok {
			c.Removed = append(c.Removed, s.Master)
			for _, r := range s.Slots {
				c.Lost.add(r)
			}
		}
	}
	for _, s := range cur.Shards {
		o, ok := old.Shard(s.Master)
		if !ok {
			c.Added = append(c.Added, s.Master)
			for _, r := range s.Slots {
				c.Lost.add(r)
			}
		} else if !slices.Equal(o.Slots, s.Slots) {
			c.Moved = true
		}
	}
	was := old.Nodes()
	for _, n := range cur.Nodes() {
		if !slices.Contains(was, n) {
			c.NewNodes = append(c.NewNodes, n)
		}
	}
	return c
}

// Topology follows a Redis Cluster's masters, replicas and slots. It reads
// CLUSTER SHARDS from any node that answers, every Interval and whenever
// Rescan asks (a subscription ended, a MOVED or ASK was seen), and tells
// watchers what changed. Keyspace notifications come only from the node
// that holds the key, so whatever subscribes to them follows it.
//
// It also holds one command connection per node (Node): rueidis's cluster
// client knows a master only once it owns slots, and a replica's promotion
// only after its own lazy refresh.
type Topology struct {
	// Base is the client option per-node clients are made from (password,
	// TLS, timeouts); its InitAddress seeds the first scan.
	Base rueidis.ClientOption
	// Interval is how often the topology is rescanned (1 s when 0).
	Interval time.Duration
	Logger   *slog.Logger

	mu       sync.Mutex
	layout   Layout
	clients  map[string]rueidis.Client
	watchers map[int]func(Change)
	nextID   int
	kick     chan struct{}
	stop     context.CancelFunc
	done     chan struct{}
}

// StartTopology scans the cluster once (an error if no node answers) and
// keeps following it until Close.
func StartTopology(ctx context.Context, base rueidis.ClientOption, interval time.Duration, logger *slog.Logger) (*Topology, error) {
	t := &Topology{Base: base, Interval: interval, Logger: logger,
		clients: map[string]rueidis.Client{}, watchers: map[int]func(Change){},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	l, err := t.scan(ctx, base.InitAddress)
	if err != nil {
		t.closeClients(nil)
		return nil, err
	}
	t.layout = l
	loop, stop := context.WithCancel(context.Background())
	t.stop = stop
	go t.run(loop)
	return t, nil
}

// Layout is the topology last found.
func (t *Topology) Layout() Layout {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.layout
}

// Rescan asks for a scan now; it does not wait for it.
func (t *Topology) Rescan() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Watch calls f, on the scanning goroutine, with every change found from
// now on; stop ends that. f must not block for long.
func (t *Topology) Watch(f func(Change)) (stop func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.nextID
	t.nextID++
	t.watchers[id] = f
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.watchers, id)
	}
}

// Node is the shared command client of one node, made on first use and
// closed when the node leaves the topology.
func (t *Topology) Node(addr string) (rueidis.Client, error) {
	t.mu.Lock()
	c := t.clients[addr]
	t.mu.Unlock()
	if c != nil {
		return c, nil
	}
	// Dialled unlocked: a dead node takes the dial timeout to refuse.
	c, err := t.Dial(addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if had := t.clients[addr]; had != nil {
		c.Close() // another caller was quicker
		return had, nil
	}
	t.clients[addr] = c
	return c, nil
}

// Dial makes a new single-node client for addr, owned by the caller.
func (t *Topology) Dial(addr string) (rueidis.Client, error) {
	opt := t.Base
	opt.InitAddress = []string{addr}
	opt.ForceSingleClient = true
	opt.DisableCache = true
	opt.ClientName = "keyflux-node"
	return rueidis.NewClient(opt)
}

// Close stops rescanning and closes the node clients.
func (t *Topology) Close() {
	t.stop()
	<-t.done
	t.closeClients(nil)
}

// closeClients closes the clients of nodes not in keep (all when nil).
func (t *Topology) closeClients(keep []string) {
	t.mu.Lock()
	var gone []rueidis.Client
	for addr, c := range t.clients {
		if !slices.Contains(keep, addr) {
			gone = append(gone, c)
			delete(t.clients, addr)
		}
	}
	t.mu.Unlock()
	for _, c := range gone {
		c.Close()
	}
}

func (t *Topology) interval() time.Duration {
	if t.Interval <= 0 {
		return time.Second
	}
	return t.Interval
}

func (t *Topology) run(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(t.interval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.kick:
		}
		t.update(ctx)
	}
}

// update scans and tells the watchers when the layout changed.
func (t *Topology) update(ctx context.Context) {
	cur := t.Layout()
	// Every known node is a seed: any of them may be the one that answers.
	seeds := slices.Concat(cur.Nodes(), t.Base.InitAddress)
	l, err := t.scan(ctx, seeds)
	if err != nil {
		if ctx.Err() == nil {
			t.Logger.Warn("cannot read the cluster topology", "err", err)
		}
		return
	}
	if l.equal(cur) {
		return
	}
	c := diff(cur, l)
	t.mu.Lock()
	t.layout = l
	ws := make([]func(Change), 0, len(t.watchers))
	for _, id := range slices.Sorted(maps.Keys(t.watchers)) {
		ws = append(ws, t.watchers[id])
	}
	t.mu.Unlock()
	t.Logger.Info("redis cluster topology changed", "change", c.Describe(), "topology", l.String())
	for _, w := range ws {
		w(c)
	}
	t.closeClients(l.Nodes())
}

// scan reads CLUSTER SHARDS from the first seed that answers. A node that
// has not yet seen a failover reports the old layout; the next scan
// corrects it.
func (t *Topology) scan(ctx context.Context, seeds []string) (Layout, error) {
	var errs []error
	seen := map[string]bool{}
	for _, addr := range seeds {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		c, err := t.Node(addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		l, err := readShards(sctx, c, addr)
		if err == nil {
			l, err = t.confirm(sctx, l)
		}
		cancel()
		if err == nil {
			return l, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return Layout{}, fmt.Errorf("no cluster node answered CLUSTER SHARDS: %w", errors.Join(errs...))
}

// confirm asks every master of l whether it is one (ROLE): a node's view
// lags behind a failover, and one subscription on a demoted master, which
// replicates its successor's writes, would deliver their events twice. A
// master with slots that says it is a replica means l is stale; a slotless
// one is left out (a demoted master still listed). A master that does not
// answer stays: it may be dead, and only the cluster can say so.
func (t *Topology) confirm(ctx context.Context, l Layout) (Layout, error) {
	out := Layout{Shards: make([]Shard, 0, len(l.Shards))}
	for _, s := range l.Shards {
		c, err := t.Node(s.Master)
		if err == nil {
			var role []rueidis.RedisMessage
			if role, err = c.Do(ctx, c.B().Role().Build()).ToArray(); err == nil && len(role) > 0 {
				if r, _ := role[0].ToString(); r != "master" {
					if len(s.Slots) > 0 {
						return Layout{}, fmt.Errorf("stale view: %s owns slots but says it is a %s", s.Master, r)
					}
					continue
				}
			}
		}
		out.Shards = append(out.Shards, s)
	}
	return out, nil
}

// readShards parses CLUSTER SHARDS (Redis 7). A shard counts when its
// master is online; failed nodes are left out.
func readShards(ctx context.Context, c rueidis.Client, from string) (Layout, error) {
	shards, err := c.Do(ctx, c.B().ClusterShards().Build()).ToArray()
	if err != nil {
		return Layout{}, err
	}
	var l Layout
	for _, sh := range shards {
		m, err := sh.AsMap()
		if err != nil {
			return Layout{}, err
		}
		slotsMsg, nodesMsg := m["slots"], m["nodes"]
		bounds, _ := slotsMsg.AsIntSlice()
		nodes, _ := nodesMsg.ToArray()
		var s Shard
		for i := 0; i+1 < len(bounds); i += 2 {
			s.Slots = append(s.Slots, SlotRange{int(bounds[i]), int(bounds[i+1])})
		}
		for _, n := range nodes {
			info, err := nodeInfo(n)
			if err != nil || info["health"] == "fail" || info["health"] == "failed" {
				continue
			}
			addr := nodeAddr(info, from)
			switch {
			case addr == "":
			case info["role"] == "master" && info["health"] == "online":
				s.Master = addr
			case info["role"] != "master":
				// Even while loading its first sync: it needs the flags
				// before it is ever promoted.
				s.Replicas = append(s.Replicas, addr)
			}
		}
		if s.Master == "" {
			continue // its master failed and no replica is promoted yet
		}
		slices.SortFunc(s.Slots, func(a, b SlotRange) int { return a.From - b.From })
		slices.Sort(s.Replicas)
		l.Shards = append(l.Shards, s)
	}
	if len(l.Shards) == 0 {
		return Layout{}, errors.New("CLUSTER SHARDS names no online master")
	}
	slices.SortFunc(l.Shards, func(a, b Shard) int { return strings.Compare(a.Master, b.Master) })
	return l, nil
}

// nodeInfo is one node of CLUSTER SHARDS as strings (port is an integer).
func nodeInfo(n rueidis.RedisMessage) (map[string]string, error) {
	m, err := n.AsMap()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if i, err := v.AsInt64(); err == nil {
			out[k] = strconv.FormatInt(i, 10)
		} else {
			out[k], _ = v.ToString()
		}
	}
	return out, nil
}

// nodeAddr is a node's host:port as CLUSTER SHARDS gives it: its endpoint,
// or its ip, or (endpoint "?", unknown) the host of the node asked.
func nodeAddr(info map[string]string, from string) string {
	port := info["port"]
	if port == "" || port == "0" {
		return ""
	}
	host := info["endpoint"]
	if host == "" || host == "?" {
		host = info["ip"]
	}
	if host == "" || host == "?" {
		host, _, _ = net.SplitHostPort(from)
	}
	return net.JoinHostPort(host, port)
}

// KeySlot is the hash slot of key (CRC16 of the key, or of its hash tag).
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % Slots)
}

// PatternSlot is the one slot every key a glob pattern matches hashes to,
// when the pattern fixes it: no glob character before the first complete
// non-empty hash tag, or none at all.
func PatternSlot(pattern string) (int, bool) {
	end := strings.IndexAny(pattern, `*?[\`)
	if end < 0 {
		return KeySlot(pattern), true
	}
	lit := pattern[:end]
	i := strings.IndexByte(lit, '{')
	if i < 0 {
		return 0, false
	}
	j := strings.IndexByte(lit[i+1:], '}')
	if j <= 0 {
		// An empty tag "{}" hashes the whole key; no '}' yet may still be
		// a tag once the glob is filled in.
		return 0, false
	}
	return KeySlot(lit), true
}

// crc16 is CRC-16/XMODEM, Redis Cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
