package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/app/redisserver"
)

// redisConn is the Redis Keyflux uses, and the private server it launched
// when no URL was given.
type redisConn struct {
	client rueidis.Client
	// cache is the client-side caching client: key watches and /api/keys.
	// nil when Redis cannot do it (before 6, or without RESP3).
	cache   rueidis.Client
	opt     rueidis.ClientOption
	db      int
	private *redisserver.Server
}

// connectRedis connects to url, or launches a private redis-server when url
// is empty. It waits (with backoff) for a server that is not up yet.
func connectRedis(ctx context.Context, url string, log *slog.Logger) (*redisConn, error) {
	rc := &redisConn{}
	if url == "" {
		srv, err := redisserver.Start(ctx)
		if err != nil {
			return nil, fmt.Errorf("no Redis URL given (--redis-url or KEYFLUX_REDIS_URL) and a private redis-server could not start: %w", err)
		}
		rc.private, url = srv, srv.URL()
		log.Info("launched a private redis-server", "url", url)
	}
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		rc.close()
		return nil, fmt.Errorf("redis url: %w", err)
	}
	// Pub/sub and commands only: the client-side cache belongs to a client
	// of its own, so invalidations never queue behind notifications.
	rc.opt = opt
	opt.DisableCache = true
	rc.db = opt.SelectDB
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		rc.client, err = rueidis.NewClient(opt)
		if err == nil {
			break
		}
		log.Warn("waiting for Redis", "addr", opt.InitAddress, "err", err)
		select {
		case <-ctx.Done():
			rc.close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	log.Info("using Redis", "addr", opt.InitAddress, "db", rc.db, "private", rc.private != nil)
	return rc, nil
}

// cacheOptions say how the caching client is made.
type cacheOptions struct {
	// BCAST with one PREFIX per exposed prefix instead of OPTIN tracking.
	Broadcast bool
	Prefixes  []string
	Bytes     int
	// OnInvalidations runs on the connection's reader: it must not block.
	OnInvalidations func([]rueidis.RedisMessage)
}

// openCache connects the client-side caching client. It has one connection,
// so that the invalidations, the keyspace events that explain deletions and
// the replies of the reads that follow them arrive in the order Redis sent
// them; reads are one per change, which one pipelined connection carries.
func (rc *redisConn) openCache(o cacheOptions, log *slog.Logger) error {
	opt := rc.opt
	opt.DisableCache = false
	opt.ClientName = "keyflux-cache"
	opt.PipelineMultiplex = -1
	opt.CacheSizeEachConn = o.Bytes
	opt.OnInvalidations = o.OnInvalidations
	if o.Broadcast {
		opt.ClientTrackingOptions = bcastOptions(o.Prefixes)
	}
	c, err := rueidis.NewClient(opt)
	if errors.Is(err, rueidis.ErrNoCache) {
		log.Warn("Redis cannot do client-side caching (it needs Redis 6+ over RESP3): " +
			"/streams/keys is off and /api/keys reads Redis on every request")
		return nil
	}
	if err != nil {
		return fmt.Errorf("client-side caching client: %w", err)
	}
	rc.cache = c
	return nil
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

func (rc *redisConn) ping(ctx context.Context) error {
	return rc.client.Do(ctx, rc.client.B().Ping().Build()).Error()
}

func (rc *redisConn) close() {
	if rc.cache != nil {
		rc.cache.Close()
	}
	if rc.client != nil {
		rc.client.Close()
	}
	if rc.private != nil {
		rc.private.Stop()
	}
}
