package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/app/redisserver"
)

// redisConn is the Redis Keyflux uses, and the private server it launched
// when no URL was given.
type redisConn struct {
	client  rueidis.Client
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

func (rc *redisConn) ping(ctx context.Context) error {
	return rc.client.Do(ctx, rc.client.B().Ping().Build()).Error()
}

func (rc *redisConn) close() {
	if rc.client != nil {
		rc.client.Close()
	}
	if rc.private != nil {
		rc.private.Stop()
	}
}
