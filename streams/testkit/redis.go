package testkit

import (
	"context"
	"testing"

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
	r := cmd()
	for try := 0; try < 3 && isConnError(r.Error()); try++ {
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
