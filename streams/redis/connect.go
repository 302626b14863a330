package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams"
	"github.com/keyflux/keyflux/streams/redis/redisserver"
)

// Options say which Redis to use and how the sources may use it.
type Options struct {
	// URL is a redis:// URL; empty launches a private redis-server.
	URL string
	// KeyspaceConfig says whether Keyflux may set notify-keyspace-events.
	KeyspaceConfig NotifyMode
	// KeyspaceCheck is how often notify-keyspace-events is checked while
	// keyspace streams are live (NotifyConfig.Interval).
	KeyspaceCheck time.Duration
	// Broadcast tracks keys in BCAST mode, one PREFIX per entry of
	// Prefixes (every key when empty), instead of OPTIN.
	Broadcast bool
	Prefixes  []string
	// CacheBytes is the client-side cache's memory.
	CacheBytes int
	// ValueMaxBytes bounds the JSON of one value (see Values.MaxBytes).
	ValueMaxBytes int
	// APICache serves Values from the client-side cache.
	APICache bool
	// MaxPatterns bounds the PSUBSCRIBE patterns held in Redis (see
	// Upstreams.MaxPatterns; 0: no bound), on each node of a cluster.
	MaxPatterns int
	// Cluster says whether the URL names a Redis Cluster (ClusterAuto:
	// ask it).
	Cluster ClusterMode
	// TopologyCheck is how often a cluster's topology is rescanned (see
	// Topology.Interval).
	TopologyCheck time.Duration
	// Journal, when set, serves keyspace and channel streams from journals
	// in Redis (see Journals), so that ids hold across processes.
	Journal *JournalOptions
	// Registerer receives the adapter's metrics (nil: not registered).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// JournalOptions configure Journals.
type JournalOptions struct {
	MaxLen int64
	TTL    time.Duration
	Lease  time.Duration
	Owner  string
}

// Conn is the Redis Keyflux uses, with every source on it. It holds two
// rueidis clients: one for commands and pub/sub, and one for client-side
// caching (key watches), so that invalidations never queue behind
// notifications.
type Conn struct {
	Keyspace   *Keyspace
	Channels   *Channels
	StreamLogs *StreamLogs
	// KeyWatches is nil when Redis cannot do client-side caching.
	KeyWatches *KeyWatches
	// Sessions reads Spring Session hashes (--auth spring-session); nil
	// without client-side caching.
	Sessions      *Sessions
	Invalidations *Invalidations
	// Values reads keys for GET /api/keys: from the client-side cache
	// when there is one and Options.APICache allows it.
	Values *Values
	// DB is the database of the URL.
	DB int
	// Databases is how many databases Redis has (see databases): 1 on a
	// cluster.
	Databases int
	// Topology follows the masters and slots of a Redis Cluster; nil on a
	// single Redis.
	Topology *Topology
	// Journals is nil without Options.Journal.
	Journals *Journals
	// Sets keeps named sets of combined-stream subs.
	Sets *Sets

	client rueidis.Client
	cache  rueidis.Client // nil without client-side caching
	// upstreams are waited for on Close (streams closed first).
	upstreams []*Upstreams
	notify    *NotifyConfig
	private   *redisserver.Server
}

// Open connects to Redis (waiting, with backoff, for one that is not up
// yet), checks or applies its keyspace settings and builds the sources.
func Open(ctx context.Context, o Options) (*Conn, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c := &Conn{Invalidations: &Invalidations{}}
	url := o.URL
	if url == "" {
		srv, err := redisserver.Start(ctx)
		if err != nil {
			return nil, fmt.Errorf("no Redis URL given (--redis-url or KEYFLUX_REDIS_URL) and a private redis-server could not start: %w", err)
		}
		c.private, url = srv, srv.URL()
		logger.Info("launched a private redis-server", "url", url)
	}
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("redis url: %w", err)
	}
	c.DB = opt.SelectDB
	if err := c.connect(ctx, &opt, o, logger); err != nil {
		c.Close()
		return nil, err
	}
	c.Databases = databases(ctx, c.client, c.DB, o.KeyspaceConfig != NotifyNone, logger)
	logger.Info("using Redis", "addr", opt.InitAddress, "db", c.DB, "databases", c.Databases,
		"private", c.private != nil, "cluster", c.Topology != nil)

	notify := &NotifyConfig{Client: c.client, Mode: o.KeyspaceConfig, Logger: logger,
		Interval: o.KeyspaceCheck, DB: c.DB, Metrics: NewNotifyMetrics(o.Registerer), Topology: c.Topology}
	c.notify = notify
	if err := notify.Check(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if c.cache, err = openCache(opt, o, c.Invalidations.OnInvalidations, logger); err != nil {
		c.Close()
		return nil, err
	}

	m := NewMetrics(o.Registerer, c.Invalidations)
	// One Upstreams for every pub/sub source on the pub/sub client: one
	// SUBSCRIBE per channel or pattern, however many streams need it.
	upstreams := &Upstreams{Client: c.client, Logger: logger, Metrics: m, MaxPatterns: o.MaxPatterns}
	c.upstreams = append(c.upstreams, upstreams)
	// Reads from Redis itself: keyspace events with values=true, and
	// /api/keys without the cache.
	fresh := &Values{Client: c.client, MaxBytes: o.ValueMaxBytes, Reads: m.KeyReads}
	c.Keyspace = &Keyspace{Upstreams: upstreams, Notify: notify, Metrics: m, Values: fresh}
	if c.Topology != nil {
		// Keyspace events come from the node that owns the key: every
		// master is subscribed, each with its own pattern budget.
		c.Keyspace.Cluster = &ClusterUpstreams{Topology: c.Topology, Logger: logger, Metrics: m,
			MaxPatterns: o.MaxPatterns, Resync: notify.EnsureNode}
		if o.Registerer != nil {
			o.Registerer.MustRegister(newNodeCollector(c.Keyspace.Cluster))
		}
		notify.follow()
	}
	c.Channels = &Channels{Upstreams: upstreams, Metrics: m}
	if jo := o.Journal; jo != nil {
		if c.Topology != nil {
			c.Close()
			return nil, errors.New("journals need a single Redis: Redis Cluster is not supported with --journal yet")
		}
		c.Journals = &Journals{Client: c.client, Upstreams: upstreams, Notify: notify, Logger: logger,
			Metrics: NewJournalMetrics(o.Registerer), MaxLen: jo.MaxLen, TTL: jo.TTL, Lease: jo.Lease, Owner: jo.Owner}
		c.Keyspace.Journals, c.Channels.Journals = c.Journals, c.Journals
	}
	c.StreamLogs = &StreamLogs{Client: c.client, Logger: logger}
	c.Sets = &Sets{Client: c.client, TTL: 10 * time.Minute}
	c.Values = fresh
	if c.cache != nil {
		cached := &Values{Client: c.cache, Cached: true, MaxBytes: o.ValueMaxBytes, Reads: m.KeyReads}
		c.KeyWatches = &KeyWatches{
			Values: cached, Invalidations: c.Invalidations,
			// Key watches' own keyspace subscriptions ride the caching
			// connection, so a deletion's reason arrives where its
			// invalidation does (see KeyWatches.Upstreams).
			Upstreams: &Upstreams{Client: c.cache, Logger: logger, Metrics: m},
			Notify:    notify, DB: c.DB, Logger: logger,
		}
		c.upstreams = append(c.upstreams, c.KeyWatches.Upstreams)
		if c.Topology != nil {
			// Deletion reasons come from the key's master, whichever it
			// is; losing one master re-reads, and sends only what changed.
			c.KeyWatches.Cluster = c.Keyspace.Cluster
			c.Invalidations.Cluster = true
		}
		c.Sessions = &Sessions{Client: c.cache, Invalidations: c.Invalidations, Logger: logger}
		if o.APICache {
			c.Values = cached
		}
	}
	return c, nil
}

// connect makes c.client, after finding out whether the URL names a Redis
// Cluster: INFO cluster on its first node says cluster_enabled:1. On a
// cluster the client is rueidis's cluster client, seeded with every address
// of the URL, and c.Topology follows the cluster.
func (c *Conn) connect(ctx context.Context, opt *rueidis.ClientOption, o Options, logger *slog.Logger) error {
	single := *opt
	single.ForceSingleClient = true
	probe, err := connect(ctx, single, logger)
	if err != nil {
		return err
	}
	cluster := false
	if c.private == nil || o.Cluster == ClusterOn {
		if cluster, err = clusterEnabled(ctx, probe); err != nil {
			probe.Close()
			return fmt.Errorf("INFO cluster on %s: %w", single.InitAddress[0], err)
		}
	}
	switch {
	case o.Cluster == ClusterOn && !cluster:
		probe.Close()
		return fmt.Errorf("--redis-cluster true, but %s is not a Redis Cluster node (cluster_enabled:0)", single.InitAddress[0])
	case o.Cluster == ClusterOff && cluster:
		probe.Close()
		return fmt.Errorf("--redis-cluster false, but %s is a Redis Cluster node (cluster_enabled:1): use --redis-cluster auto", single.InitAddress[0])
	case !cluster:
		c.client = probe
		*opt = single // the caching client too
		return nil
	}
	probe.Close()
	if c.DB != 0 {
		return fmt.Errorf("redis url names database %d, but a Redis Cluster has database 0 only", c.DB)
	}
	if c.client, err = connect(ctx, *opt, logger); err != nil {
		return err
	}
	if c.client.Mode() != rueidis.ClientModeCluster {
		return errors.New("INFO cluster says cluster_enabled:1, but the node does not answer CLUSTER SLOTS")
	}
	base := *opt
	base.DisableCache = true
	if c.Topology, err = StartTopology(ctx, base, o.TopologyCheck, logger); err != nil {
		return err
	}
	l := c.Topology.Layout()
	logger.Info("using Redis Cluster", "masters", len(l.Shards), "slots_covered", l.Covered(), "topology", l.String())
	return nil
}

// clusterEnabled reads cluster_enabled from INFO cluster.
func clusterEnabled(ctx context.Context, c rueidis.Client) (bool, error) {
	info, err := c.Do(ctx, c.B().Info().Section("cluster").Build()).ToString()
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_enabled:"); ok {
			return v == "1", nil
		}
	}
	return false, nil
}

// ClusterMode says whether Keyflux expects a Redis Cluster.
type ClusterMode string

const (
	ClusterAuto ClusterMode = "auto"  // ask the node (INFO cluster)
	ClusterOn   ClusterMode = "true"  // refuse to start on a single Redis
	ClusterOff  ClusterMode = "false" // refuse to start on a cluster
)

// ParseClusterMode accepts auto, true or false.
func ParseClusterMode(s string) (ClusterMode, error) {
	switch m := ClusterMode(s); m {
	case "", ClusterAuto:
		return ClusterAuto, nil
	case ClusterOn, ClusterOff:
		return m, nil
	}
	return "", fmt.Errorf("redis cluster mode %q: want auto, true or false", s)
}

// connect makes the commands and pub/sub client, retrying until Redis
// answers or ctx ends.
func connect(ctx context.Context, opt rueidis.ClientOption, logger *slog.Logger) (rueidis.Client, error) {
	// Pub/sub and commands only: the client-side cache belongs to a client
	// of its own, so invalidations never queue behind notifications.
	opt.DisableCache = true
	wait := streams.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		client, err := rueidis.NewClient(opt)
		if err == nil {
			return client, nil
		}
		logger.Warn("waiting for Redis", "addr", opt.InitAddress, "err", err)
		if !wait.Wait(ctx) {
			return nil, ctx.Err()
		}
	}
}

// openCache connects the client-side caching client, or returns nil when
// Redis cannot do client-side caching. It has one connection, so that the
// invalidations, the keyspace events that explain deletions and the
// replies of the reads that follow them arrive in the order Redis sent
// them; reads are one per change, which one pipelined connection carries.
func openCache(opt rueidis.ClientOption, o Options, onInvalidations func([]rueidis.RedisMessage), logger *slog.Logger) (rueidis.Client, error) {
	opt.DisableCache = false
	opt.ClientName = "keyflux-cache"
	opt.PipelineMultiplex = -1
	opt.CacheSizeEachConn = o.CacheBytes
	opt.OnInvalidations = onInvalidations // runs on the connection's reader: never blocks
	if o.Broadcast {
		opt.ClientTrackingOptions = bcastOptions(o.Prefixes)
	}
	c, err := rueidis.NewClient(opt)
	if errors.Is(err, rueidis.ErrNoCache) {
		logger.Warn("Redis cannot do client-side caching (it needs Redis 6+ over RESP3): " +
			"/streams/keys is off and /api/keys reads Redis on every request")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client-side caching client: %w", err)
	}
	return c, nil
}

// bcastOptions are CLIENT TRACKING's arguments for broadcasting mode, one
// PREFIX per exposed prefix (Redis refuses overlapping prefixes, so a prefix
// inside another is left out); no prefix at all means every key.
func bcastOptions(prefixes []string) []string {
	ps := slices.Clone(prefixes)
	slices.Sort(ps) // a prefix sorts before every string it is a prefix of
	ps = slices.Compact(ps)
	opts := []string{"BCAST"}
	kept := ""
	for i, p := range ps {
		if i > 0 && strings.HasPrefix(p, kept) {
			continue
		}
		kept = p
		opts = append(opts, "PREFIX", p)
	}
	return opts
}

// Ping reports whether Redis answers: on a cluster, every master (a
// keyless command would go to any node rueidis knows, a dead one too).
func (c *Conn) Ping(ctx context.Context) error {
	if c.Topology == nil {
		return c.client.Do(ctx, c.client.B().Ping().Build()).Error()
	}
	for _, addr := range c.Topology.Layout().Masters() {
		node, err := c.Topology.Node(addr)
		if err == nil {
			err = node.Do(ctx, node.B().Ping().Build()).Error()
		}
		if err != nil {
			return fmt.Errorf("cluster master %s: %w", addr, err)
		}
	}
	return nil
}

// Ready reports why Keyflux cannot serve streams as promised: Redis does not
// answer, or keyspace notifications are off (NotifyConfig.Ready).
func (c *Conn) Ready(ctx context.Context) error {
	if err := c.Ping(ctx); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	if c.Topology != nil {
		if err := c.clusterReady(ctx); err != nil {
			return err
		}
	}
	return c.notify.Ready(ctx)
}

// clusterReady reports a cluster that cannot serve every key, or a live
// keyspace stream some master does not feed.
func (c *Conn) clusterReady(ctx context.Context) error {
	l := c.Topology.Layout()
	if n := l.Covered(); n != Slots {
		return fmt.Errorf("redis cluster: %d of %d slots have an online master", n, Slots)
	}
	for _, addr := range l.Masters() {
		node, err := c.Topology.Node(addr)
		if err != nil {
			return fmt.Errorf("redis cluster master %s: %w", addr, err)
		}
		info, err := node.Do(ctx, node.B().ClusterInfo().Build()).ToString()
		if err != nil {
			return fmt.Errorf("redis cluster master %s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("redis cluster master %s reports cluster_state other than ok", addr)
		}
	}
	return c.Keyspace.Cluster.Ready()
}

// Close releases both clients and stops a private redis-server. Close the
// hub first: subscriptions still held are waited for, at most 5 s each set.
func (c *Conn) Close() {
	if c.Journals != nil { // leases released while the client is up
		c.Journals.Close()
	}
	for _, u := range c.upstreams { // their last UNSUBSCRIBEs, before the clients go
		u.Wait(5 * time.Second)
	}
	if c.Keyspace != nil && c.Keyspace.Cluster != nil {
		c.Keyspace.Cluster.Close(5 * time.Second)
	}
	if c.notify != nil {
		c.notify.unfollow()
	}
	if c.Topology != nil {
		c.Topology.Close()
	}
	if c.Sessions != nil {
		c.Sessions.Close()
	}
	if c.cache != nil {
		c.cache.Close()
	}
	if c.client != nil {
		c.client.Close()
	}
	if c.private != nil {
		c.private.Stop()
	}
}
