package streams

import (
	"context"
	"testing"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/keyflux/keyflux/app/redisserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRedis launches a private redis-server for one test, with a client.
func startRedis(t testing.TB, args ...string) (*redisserver.Server, rueidis.Client) {
	t.Helper()
	srv, err := redisserver.Start(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	c := newClient(t, srv)
	return srv, c
}

func newClient(t testing.TB, srv *redisserver.Server) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func do(t testing.TB, c rueidis.Client, args ...string) rueidis.RedisResult {
	t.Helper()
	return c.Do(context.Background(), c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
}
