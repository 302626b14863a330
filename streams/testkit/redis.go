package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/keyflux/keyflux/streams/redis/redisserver"
)

// StartRedis launches a private redis-server for one test (extra
// configuration directives in args) and stops it when the test ends.
func StartRedis(t testing.TB, args ...string) *redisserver.Server {
	t.Helper()
	srv, err := redisserver.Start(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// NewClient is a plain rueidis client of srv (no client-side cache),
// closed when the test ends.
func NewClient(t testing.TB, srv *redisserver.Server) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Redis is a private redis-server with a client of the test's own.
func Redis(t testing.TB, args ...string) (*redisserver.Server, rueidis.Client) {
	t.Helper()
	srv := StartRedis(t, args...)
	return srv, NewClient(t, srv)
}

// Do runs one command, retrying when the test's own connection broke (a
// server restart), and fails the test on any error but a nil reply.
func Do(t testing.TB, c rueidis.Client, args ...string) rueidis.RedisResult {
	t.Helper()
	cmd := func() rueidis.RedisResult {
		return c.Do(context.Background(), c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	}
	// A connection error is retried for a few seconds: a cluster client
	// learns that a killed master was replaced only with its next slot map
	// refresh, which rueidis delays by up to a second.
	r := cmd()
	wait := 20 * time.Millisecond
	for deadline := time.Now().Add(5 * time.Second); isConnError(r.Error()) && time.Now().Before(deadline); {
		time.Sleep(wait)
		wait = min(2*wait, 500*time.Millisecond)
		r = cmd()
	}
	if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
		t.Fatalf("redis %v: %v", args, err)
	}
	return r
}

func isConnError(err error) bool {
	_, redisErr := rueidis.IsRedisErr(err)
	return err != nil && !redisErr
}
