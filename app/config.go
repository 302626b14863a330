package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/keyflux/keyflux/handlers"
	"github.com/keyflux/keyflux/streams/redis"
)

// Config is everything Keyflux can be told, by flag or by the matching
// KEYFLUX_* environment variable (--redis-url is KEYFLUX_REDIS_URL).
type Config struct {
	Listen         string
	RedisURL       string
	KeyspaceConfig redis.NotifyMode
	RedisCluster   redis.ClusterMode // auto: ask the node (INFO cluster)
	TopologyCheck  time.Duration     // how often a cluster's topology is rescanned
	// Journal: keyspace and channel events kept in Redis Streams, so ids
	// hold across processes and restarts (docs/journal.md).
	Journal        bool
	JournalMaxLen  int64
	JournalTTL     time.Duration
	JournalLease   time.Duration
	Heartbeat      time.Duration
	Coalesce       time.Duration
	Retry          time.Duration
	ReplaySize     int
	Linger         time.Duration
	QueueBytes     int
	WriteTimeout   time.Duration
	Expose         handlers.Expose
	ExposeChannels handlers.Expose
	PublishToken   string
	PublishMax     int
	// AllowOrigins are the origins whose pages may use Keyflux with the
	// visitor's cookies (CORS); "*" alone allows any origin, never with
	// credentials.
	AllowOrigins []string
	// Auth: who may read what (docs/security.md).
	Auth          string // none, jwt or spring-session
	JWT           JWTConfig
	SpringSession SpringSessionConfig
	// Key watches and values (client-side caching).
	Tracking      string // optin or bcast
	WatchMaxKeys  int
	ValueMaxBytes int
	CacheBytes    int
	APICache      bool
	LogLevel      slog.Level
	LogFormat     string
	Demo          bool
	// Limits: what one request, client address or crowd may cost (docs/limits.md).
	MaxClients       int // open streams; 0: the descriptor limit minus a reserve
	MaxClientsPerIP  int
	StreamRatePerIP  float64 // new streams per second per client address
	StreamBurstPerIP int
	TrustedProxies   []netip.Prefix // peers whose X-Forwarded-For names the client
	MaxTopics        int            // distinct live topics, lingering ones included
	MaxRedisPatterns int            // PSUBSCRIBE patterns held per Redis node
	MaxQueuedBytes   int            // frames queued for all clients together
	ExposeDB         []int          // databases clients may stream; nil: the Redis URL's only
	KeyspaceCheck    time.Duration  // how often notify-keyspace-events is re-read
	AdminListen      string         // serves /metrics apart from streams; empty: on --listen
}

// JWTConfig is --auth jwt's: where keys come from and what is checked.
type JWTConfig struct {
	Key       string // HMAC secret, or @path of a file holding it
	PublicKey string // PEM file: RSA, ECDSA or Ed25519
	JWKS      string // JWKS file, or an http(s) URL refreshed in the background
	Refresh   time.Duration
	Leeway    time.Duration
	Issuer    string
	Audience  string
	Cookie    string
}

// SpringSessionConfig is --auth spring-session's: where sessions live and
// what a session may read, as templates with {session} and {principal}.
type SpringSessionConfig struct {
	Namespace string
	Cookie    string
	Keys      []string
	Channels  []string
	Streams   []string
	Publish   []string
}

// parseConfig reads flags, then the environment for flags not given.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("keyflux", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL (redis://[user:pass@]host:port/db); empty launches a private redis-server")
	clusterMode := fs.String("redis-cluster", "auto", "auto: use Redis Cluster when the URL's node is one (INFO cluster); true or false: refuse to start otherwise")
	fs.DurationVar(&c.TopologyCheck, "redis-topology-check", time.Second, "how often a Redis Cluster's masters and slots are rescanned (also at once on a lost subscription)")
	fs.BoolVar(&c.Journal, "journal", false, "keep keyspace and channel events in Redis Streams, so clients resume exactly on any Keyflux process, across restarts (docs/journal.md)")
	fs.Int64Var(&c.JournalMaxLen, "journal-maxlen", 100_000, "entries each journal keeps at most (XTRIM MAXLEN ~)")
	fs.DurationVar(&c.JournalTTL, "journal-ttl", time.Hour, "how long journal entries are kept at most (XTRIM MINID ~)")
	fs.DurationVar(&c.JournalLease, "journal-lease", 5*time.Second, "journal writer lease: the longest a dead writer's journal goes unwritten")
	mode := fs.String("keyspace-config", "auto", "auto: add the notify-keyspace-events flags Keyflux needs; none: never send CONFIG (managed Redis)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "idle time before a heartbeat comment; bounds how long a vanished client lingers")
	fs.DurationVar(&c.Retry, "retry", 2*time.Second, "reconnect delay sent to browsers in the retry field")
	fs.IntVar(&c.ReplaySize, "replay-size", 1024, "events kept per stream for Last-Event-ID resume")
	fs.DurationVar(&c.Linger, "linger", 30*time.Second, "how long a stream's Redis subscription outlives its last client")
	fs.DurationVar(&c.Coalesce, "coalesce", 0, "write each client at most once per this long, so that its frames that come meanwhile share a write: less CPU per delivery at high event rates, up to that much more latency; a client written longer ago gets its frame at once (0: off)")
	fs.IntVar(&c.QueueBytes, "queue-bytes", 1<<20, "bytes a client may fall behind before it is disconnected")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 10*time.Second, "how long a client's socket may accept nothing before it is dropped")
	expose := fs.String("expose", "", "comma-separated key prefixes clients may watch; empty exposes every key")
	exposeChannels := fs.String("expose-channels", "", "comma-separated pub/sub channel prefixes clients may relay and publish to; empty exposes every channel")
	fs.StringVar(&c.PublishToken, "publish-token", "", "Bearer token that enables POST /api/channels/<channel> and /api/log/<stream-key>; empty disables publishing")
	fs.IntVar(&c.PublishMax, "publish-max-bytes", 64<<10, "largest body POST /api/channels and /api/log accept (larger: 413)")
	allowOrigin := fs.String("allow-origin", "", "comma-separated origins whose pages may use Keyflux with the visitor's cookies (CORS); * allows any origin without credentials; empty: same origin only")
	fs.StringVar(&c.Auth, "auth", "none", "who may read what: none, jwt (signed tokens with scopes) or spring-session (Spring Session cookies)")
	fs.StringVar(&c.JWT.Key, "jwt-key", "", "HMAC secret for --auth jwt, or @path of a file holding it")
	fs.StringVar(&c.JWT.PublicKey, "jwt-public-key", "", "PEM file of the public key for --auth jwt: RSA, ECDSA or Ed25519")
	fs.StringVar(&c.JWT.JWKS, "jwt-jwks", "", "JWKS for --auth jwt: a file, or an http(s) URL fetched and refreshed in the background")
	fs.DurationVar(&c.JWT.Refresh, "jwt-jwks-refresh", 5*time.Minute, "how often --jwt-jwks is re-read (a URL re-fetched, a file checked for changes)")
	fs.DurationVar(&c.JWT.Leeway, "jwt-leeway", 30*time.Second, "clock skew allowed when checking a token's exp and nbf")
	fs.StringVar(&c.JWT.Issuer, "jwt-issuer", "", "required iss of tokens (empty: not checked)")
	fs.StringVar(&c.JWT.Audience, "jwt-audience", "", "required aud of tokens (empty: not checked)")
	fs.StringVar(&c.JWT.Cookie, "jwt-cookie", "keyflux_token", "cookie that carries the token when there is no Authorization header")
	fs.StringVar(&c.SpringSession.Namespace, "spring-session-namespace", "spring:session", "Spring Session's Redis namespace (spring.session.redis.namespace)")
	fs.StringVar(&c.SpringSession.Cookie, "spring-session-cookie", "SESSION", "cookie that carries the Spring Session id")
	ssKeys := fs.String("spring-session-keys", "{namespace}:sessions:expires:{session},{namespace}:sessions:{session}", "keys a session may read: comma-separated names or prefix* with {namespace}, {session} and {principal}")
	ssChannels := fs.String("spring-session-channels", "", "pub/sub channels a session may relay (templates as --spring-session-keys)")
	ssStreams := fs.String("spring-session-streams", "", "Redis Streams a session may read (templates as --spring-session-keys)")
	ssPublish := fs.String("spring-session-publish", "", "channels and Redis Streams a session may publish to (templates as --spring-session-keys)")
	fs.StringVar(&c.Tracking, "tracking", "optin", "client-side caching mode: optin (Redis tracks the keys Keyflux reads) or bcast (Redis sends every change under the exposed prefixes)")
	fs.IntVar(&c.WatchMaxKeys, "watch-max-keys", 100, "how many keys one /streams/keys request may watch")
	fs.IntVar(&c.ValueMaxBytes, "value-max-bytes", 64<<10, "larger values (their JSON) are sent as {\"truncated\": true, \"size\": N}")
	fs.IntVar(&c.CacheBytes, "cache-bytes", 128<<20, "memory for the client-side cache of key values")
	fs.BoolVar(&c.APICache, "api-cache", true, "serve /api/keys from the client-side cache (false: one Redis read per request)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.IntVar(&c.MaxClients, "max-clients", 0, "open streams at most (past it: 503); 0: the open-file limit minus a reserve for Redis, health checks and metrics")
	fs.IntVar(&c.MaxClientsPerIP, "max-clients-per-ip", 256, "open streams per client address (past it: 429)")
	fs.Float64Var(&c.StreamRatePerIP, "stream-rate-per-ip", 10, "new streams per second per client address, on average (past it: 429)")
	fs.IntVar(&c.StreamBurstPerIP, "stream-burst-per-ip", 100, "new streams a client address may open at once before --stream-rate-per-ip applies")
	proxies := fs.String("trusted-proxies", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client address")
	fs.IntVar(&c.MaxTopics, "max-topics", 10000, "distinct live streams, lingering ones included; the oldest lingering go first, then new streams get 503")
	fs.IntVar(&c.MaxRedisPatterns, "max-redis-patterns", 64, "PSUBSCRIBE patterns held per Redis node; past it broader patterns are matched locally")
	fs.IntVar(&c.MaxQueuedBytes, "max-queued-bytes", 256<<20, "bytes of frames queued for all clients together; past it the clients furthest behind get their slow policy")
	exposeDB := fs.String("expose-db", "", "comma-separated databases clients may stream (db=); empty: the Redis URL's database only")
	fs.DurationVar(&c.KeyspaceCheck, "keyspace-check", 5*time.Second, "how often notify-keyspace-events is re-read while keyspace streams are live")
	fs.StringVar(&c.AdminListen, "admin-listen", "", "separate listen address for /metrics; empty: served on --listen")
	fs.BoolVar(&c.Demo, "demo", false, "also run a demo writer: sample sensor:*, session:*, order:* keys in the Redis in use")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("KEYFLUX")); err != nil {
		return c, err
	}
	var err error
	if c.KeyspaceConfig, err = redis.ParseNotifyMode(*mode); err != nil {
		return c, err
	}
	if c.RedisCluster, err = redis.ParseClusterMode(*clusterMode); err != nil {
		return c, err
	}
	if c.TopologyCheck <= 0 {
		return c, fmt.Errorf("redis-topology-check must be positive")
	}
	if c.JournalMaxLen < 1 || c.JournalTTL < time.Second || c.JournalLease < 100*time.Millisecond {
		return c, fmt.Errorf("journal-maxlen must be positive, journal-ttl at least 1s and journal-lease at least 100ms")
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("log-level: %w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("log-format %q: want text or json", c.LogFormat)
	}
	if c.Heartbeat <= 0 || c.Retry <= 0 || c.WriteTimeout <= 0 || c.Linger < 0 {
		return c, fmt.Errorf("heartbeat, retry and write-timeout must be positive, linger not negative")
	}
	if c.Coalesce < 0 || c.Coalesce > time.Second {
		return c, fmt.Errorf("coalesce must be between 0 (off) and 1s")
	}
	if c.ReplaySize < 1 || c.QueueBytes < 1024 {
		return c, fmt.Errorf("replay-size must be at least 1 and queue-bytes at least 1024")
	}
	if c.PublishMax < 1 || c.PublishMax > 4<<20 {
		return c, fmt.Errorf("publish-max-bytes must be from 1 to 4194304 (the HTTP body limit)")
	}
	if c.Tracking != "optin" && c.Tracking != "bcast" {
		return c, fmt.Errorf("tracking %q: want optin or bcast", c.Tracking)
	}
	if c.WatchMaxKeys < 1 || c.ValueMaxBytes < 64 || c.CacheBytes < 1<<20 {
		return c, fmt.Errorf("watch-max-keys must be at least 1, value-max-bytes at least 64 and cache-bytes at least 1 MiB")
	}
	if c.MaxClients < 0 || c.MaxClientsPerIP < 1 || c.StreamRatePerIP <= 0 || c.StreamBurstPerIP < 1 {
		return c, fmt.Errorf("max-clients must not be negative; max-clients-per-ip, stream-rate-per-ip and stream-burst-per-ip must be positive")
	}
	if c.MaxTopics < 1 || c.MaxRedisPatterns < 1 || c.MaxQueuedBytes < c.QueueBytes || c.KeyspaceCheck <= 0 {
		return c, fmt.Errorf("max-topics and max-redis-patterns must be positive, max-queued-bytes at least queue-bytes, keyspace-check positive")
	}
	if c.TrustedProxies, err = parsePrefixes(*proxies); err != nil {
		return c, fmt.Errorf("trusted-proxies: %w", err)
	}
	if c.ExposeDB, err = parseDBs(*exposeDB); err != nil {
		return c, fmt.Errorf("expose-db: %w", err)
	}
	switch c.Auth {
	case "none", "jwt", "spring-session":
	default:
		return c, fmt.Errorf("auth %q: want none, jwt or spring-session", c.Auth)
	}
	if c.JWT.Leeway < 0 || c.JWT.Refresh < 100*time.Millisecond {
		return c, fmt.Errorf("jwt-leeway must not be negative, jwt-jwks-refresh at least 100ms")
	}
	c.AllowOrigins = list(*allowOrigin)
	c.SpringSession.Keys = list(*ssKeys)
	c.SpringSession.Channels = list(*ssChannels)
	c.SpringSession.Streams = list(*ssStreams)
	c.SpringSession.Publish = list(*ssPublish)
	c.Expose = handlers.ParseExpose(*expose)
	c.ExposeChannels = handlers.ParseExpose(*exposeChannels)
	return c, nil
}

// list reads a comma-separated list, without blanks.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePrefixes reads comma-separated CIDRs; a bare address is a /32 or /128.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseDBs reads comma-separated database numbers.
func parseDBs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 65535 {
			return nil, fmt.Errorf("%q is not a database number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c Config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
