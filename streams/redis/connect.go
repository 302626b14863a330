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
	// Upstreams.MaxPatterns; 0: no bound).
	MaxPatterns int
	// Registerer receives the adapter's metrics (nil: not registered).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
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
	// Databases is how many databases Redis has (see databases).
	Databases int

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
	if c.client, err = connect(ctx, opt, logger); err != nil {
		c.Close()
		return nil, err
	}
	c.Databases = databases(ctx, c.client, c.DB, o.KeyspaceConfig != NotifyNone, logger)
	logger.Info("using Redis", "addr", opt.InitAddress, "db", c.DB, "databases", c.Databases, "private", c.private != nil)

	notify := &NotifyConfig{Client: c.client, Mode: o.KeyspaceConfig, Logger: logger,
		Interval: o.KeyspaceCheck, DB: c.DB, Metrics: NewNotifyMetrics(o.Registerer)}
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
	c.Channels = &Channels{Upstreams: upstreams, Metrics: m}
	c.StreamLogs = &StreamLogs{Client: c.client, Logger: logger}
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
		c.Sessions = &Sessions{Client: c.cache, Invalidations: c.Invalidations, Logger: logger}
		if o.APICache {
			c.Values = cached
		}
	}
	return c, nil
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

// Ping reports whether Redis answers.
func (c *Conn) Ping(ctx context.Context) error {
	return c.client.Do(ctx, c.client.B().Ping().Build()).Error()
}

// Ready reports why Keyflux cannot serve streams as promised: Redis does not
// answer, or keyspace notifications are off (NotifyConfig.Ready).
func (c *Conn) Ready(ctx context.Context) error {
	if err := c.Ping(ctx); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	return c.notify.Ready(ctx)
}

// Close releases both clients and stops a private redis-server. Close the
// hub first: subscriptions still held are waited for, at most 5 s each set.
func (c *Conn) Close() {
	for _, u := range c.upstreams { // their last UNSUBSCRIBEs, before the clients go
		u.Wait(5 * time.Second)
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
